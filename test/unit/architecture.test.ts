// The lint guards the shape of the house (eslint.config.js): each forbidden import is
// refused with its reason, and the imports the design allows pass.
import path from 'node:path';
import { expect } from 'chai';
import { ESLint } from 'eslint';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('architecture lint', function () {
  this.timeout(60_000);
  const eslint = new ESLint({ cwd: ROOT });

  /** The no-restricted-imports messages for one import written in a file at `file`. */
  async function refusals(file: string, from: string): Promise<string[]> {
    const [result] = await eslint.lintText(`import '${from}';\n`, { filePath: path.join(ROOT, file) });
    return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
  }

  const forbidden: [file: string, from: string, reason: RegExp][] = [
    ['services/api/app.ts', '../worker/committer.js', /share only the queue and the store/],
    ['services/api/read/stats.ts', '../../worker/consumer.js', /share only the queue and the store/],
    ['services/worker/main.ts', '../api/app.js', /share only the queue and the store/],
    ['shared/queue.ts', '../services/api/app.js', /never the other way round/],
    ['shared/store/sqlite/write.ts', '../../../services/worker/committer.js', /never the other way round/],
    ['tools/chaos.ts', '../test/support/events.js', /Only tests import test/],
    ['bench/run.ts', '../test/support/http.js', /Only tests import test/],
    ['services/api/main.ts', '../../test/support/events.js', /Only tests import test/],
  ];
  for (const [file, from, reason] of forbidden) {
    it(`refuses ${from} in ${file}`, async () => {
      const messages = await refusals(file, from);
      expect(messages).to.have.length(1);
      expect(messages[0]).to.match(reason);
    });
  }

  const allowed: [file: string, from: string][] = [
    ['services/api/app.ts', '../../shared/store/port.js'],
    ['services/worker/main.ts', '../../shared/queue.js'],
    ['shared/store/open.ts', './sqlite/store.js'],
    ['tools/chaos.ts', './harness/cluster.js'],
    ['test/integration/api.test.ts', '../support/http.js'],
  ];
  for (const [file, from] of allowed) {
    it(`lets ${file} import ${from}`, async () => {
      expect(await refusals(file, from)).to.deep.equal([]);
    });
  }
});
