// Flat config: typescript-eslint's type-aware rules, chiefly to catch floating promises,
// and the import boundaries between the parts of the service.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * One no-restricted-imports rule per part, naming the folders it may not reach into. A file
 * gets one value of the rule (the last config that matches wins), so each part lists all of
 * its bans, the ban on test/ included.
 */
function architecture() {
  const services = 'The API and the workers share only the queue and the store: neither imports the other.';
  const testOnly = { group: ['**/test/**', '../test', '../../test'], message: 'Only tests import test/: what tools and bench share with tests lives in tools/harness.' };
  const part = (files, bans) => ({
    files,
    rules: { 'no-restricted-imports': ['error', { patterns: [...bans, testOnly] }] },
  });
  return [
    part(['services/**/*.ts', 'shared/**/*.ts', 'tools/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'], []),
    part(['services/api/**/*.ts'], [{ group: ['**/worker/**', '**/services/worker/**'], message: services }]),
    part(['services/worker/**/*.ts'], [{ group: ['**/api/**', '**/services/api/**'], message: services }]),
    part(['shared/**/*.ts'], [{ group: ['**/services/**'], message: 'shared/ is imported by the services, never the other way round.' }]),
  ];
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'test-artifacts/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  // The shape of the house: the API and the workers share only the queue and the store, so
  // neither imports the other; shared/ imports no service; nothing but tests imports test/.
  ...architecture(),
  {
    // The dashboard's scripts run in the browser. The project service types them through the
    // tsconfig.json next to them (DOM library, no Node types). They are scripts sharing one
    // scope (page.ts inlines them together), so a name one declares and another uses is not
    // unused: only names inside functions are checked for that.
    files: ['services/api/operator/dashboard/{types,dom,render,dashboard}.ts'],
    languageOptions: { globals: globals.browser, sourceType: 'script' },
    rules: { '@typescript-eslint/no-unused-vars': ['error', { vars: 'local', argsIgnorePattern: '^_' }] },
  },
  {
    // Tests read JSON answers whose shape is what they assert.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unused-expressions': 'off',
    },
  },
);
