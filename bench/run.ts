// `npm run bench`: the service as real processes (private Redis, the API, N workers),
// driven by a load generator in its own process, plus the stage limits measured in the
// same run. Results go to BENCHMARKS.md (a dated table) and bench-results/*.json.
//
// This file wires the parts: args.ts (the flags), scenario.ts (one scenario end to end, on
// service.ts's processes, sampled by sampler.ts, its books in accounting.ts),
// writers-scaling.ts, report.ts (the tables) and summary.ts (BENCHMARKS.md).
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../tools/harness/root.js';
import { HELP, num, parseFlags, scenariosOf, storeOf, subscriberCountsOf, UsageError, type BenchArgs } from './args.js';
import { runMeta } from './meta.js';
import { markdown, writersMarkdown } from './report.js';
import { RESULTS, type RunResult } from './results.js';
import { runScenario } from './scenario.js';
import { writeBenchmarks } from './summary.js';
import { measureWriters } from './writers-scaling.js';

async function bench(values: BenchArgs): Promise<void> {
  const all = values.scenario === 'all';
  const names = all ? ['empty-batched', 'batched-random', 'batched-ordered', 'single', 'wait', 'recovery'] : values.scenario === 'writers' ? [] : [values.scenario];
  const store = storeOf(values);
  const scenarios = scenariosOf(values, names);
  fs.mkdirSync(RESULTS, { recursive: true });
  const subscriberCounts = subscriberCountsOf(values);
  const results: RunResult[] = [];
  for (const s of scenarios) {
    for (const subscribers of subscriberCounts) {
      results.push(
        await runScenario(s, {
          stages: !values['no-stages'],
          appendfsync: values.appendfsync === 'always' ? 'always' : 'everysec',
          synchronous: values.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL',
          store,
          subscribers,
          oneTopicEach: values['subscribe-to'] === 'one-topic',
        }),
      );
    }
  }
  const writers = all || values.scenario === 'writers' ? await measureWriters(num(values.events, 200_000)) : [];
  const meta = runMeta({ appendfsync: values.appendfsync, synchronous: values.synchronous, store });
  const md = markdown(results, meta) + writersMarkdown(writers);
  process.stdout.write(`\n${md}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.writeFileSync(path.join(RESULTS, `bench-${stamp}.json`), JSON.stringify({ meta, results, writers }, null, 2));
  if (!values['no-write']) writeBenchmarks(path.join(ROOT, 'BENCHMARKS.md'), { results, meta, tables: md, full: all });
}

async function main(): Promise<void> {
  try {
    const values = parseFlags();
    if (values.help) {
      process.stdout.write(HELP);
      return;
    }
    await bench(values);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bench: ${err.message}\n\n${HELP}`);
    process.exit(2);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
