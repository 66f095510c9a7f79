// The /stats answer is declared once, by its reader (StatsAnswer, services/api/read/stats.ts).
// The dashboard's script and the test harness keep their own types of it (the dashboard
// compiles alone, for the browser; the harness talks to the API from outside): both are
// compiled here against StatsAnswer, so a field renamed or retyped in the reader fails
// this test instead of the page. The OpenAPI schema is checked against live answers in
// test/integration/openapi.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import ts from 'typescript';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CHECK = path.join(ROOT, 'test/unit/stats-shape.check.ts');

/** Compiles `source` as if it were a file at CHECK; the messages of its errors. */
function compile(source: string): string[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, version, ...rest) =>
    path.resolve(file) === CHECK ? ts.createSourceFile(file, source, version) : getSourceFile(file, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (file) => path.resolve(file) === CHECK || fileExists(file);
  const program = ts.createProgram([CHECK], options, host);
  const sf = program.getSourceFile(CHECK)!;
  return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('the /stats answer, one shape', function () {
  this.timeout(60_000);
  const dashboardTypes = fs.readFileSync(path.join(ROOT, 'services/api/operator/dashboard/types.ts'), 'utf8');
  const imports = [
    "import type { StatsAnswer } from '../../services/api/read/stats.js';",
    "import type { Stats as HarnessStats } from '../../tools/harness/http.js';",
  ].join('\n');
  /** The fields a type names, without its index signature. */
  const named = 'type Named<T> = { [K in keyof T as string extends K ? never : K]: T[K] };';

  it('gives the dashboard and the harness every field they read, with its type', () => {
    const errors = compile(`${imports}\n${named}\n${dashboardTypes}\nexport const forDashboard = (s: StatsAnswer): Stats => s;\nexport const forHarness = (s: StatsAnswer): Named<HarnessStats> => s;\n`);
    expect(errors).to.deep.equal([]);
  });

  it('fails when a type reads a field the answer lacks (the check can fail)', () => {
    const broken = dashboardTypes.replace('type Stats = {', 'type Stats = {\n  not_in_the_answer: number;');
    expect(broken).not.to.equal(dashboardTypes);
    const errors = compile(`${imports}\n${broken}\nexport const forDashboard = (s: StatsAnswer): Stats => s;\n`);
    expect(errors.join('\n')).to.include('not_in_the_answer');
  });
});
