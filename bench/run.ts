// `npm run bench`: the service as real processes (private Redis, the API, N workers),
// driven by a load generator in its own process, plus the stage limits and the references
// measured in the same run. Results go to BENCHMARKS.md (a dated table) and bench-results/*.json.
//
// This file wires the parts: args.ts (the flags), jetstream.ts (the reference), scenario.ts
// (one scenario end to end, on service.ts's processes, sampled by sampler.ts, its books in
// accounting.ts), fanout.ts (the live stream's runs), start-figure.ts (a worker's start),
// writers-scaling.ts, report.ts and reference-report.ts (the tables) and summary.ts
// (BENCHMARKS.md's top section).
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../tools/harness/root.js';
import { HELP, num, parseFlags, partsOf, scaled, scaleOf, scenariosOf, storeOf, subscriberCountsOf, UsageError, type BenchArgs } from './args.js';
import { runFanout } from './fanout.js';
import { jetStreamModes, measureJetStream, type JetStreamResult } from './jetstream.js';
import { runMeta } from './meta.js';
import { referenceMarkdown } from './reference-report.js';
import { markdown, writersMarkdown } from './report.js';
import { RESULTS, type RunResult } from './results.js';
import { runScenario, type RunOptions } from './scenario.js';
import { PRESETS } from './scenarios.js';
import { identityCostTable, measureIdentityCost, slope } from './identity-size.js';
import { measureProfiles, profileMarkdown } from './profiles.js';
import { progress } from './progress.js';
import { measureWorkerStart, type WorkerStart } from './start-figure.js';
import { writeBenchmarks } from './summary.js';
import { measureWriters } from './writers-scaling.js';

/** The scenarios asked for, each once per `--subscribers` count (once without, by default). */
async function runScenarios(values: BenchArgs, names: string[], opts: RunOptions): Promise<RunResult[]> {
  const results: RunResult[] = [];
  for (const s of scenariosOf(values, names)) {
    for (const subscribers of subscriberCountsOf(values)) results.push(await runScenario(s, { ...opts, subscribers }));
  }
  return results;
}

async function bench(values: BenchArgs): Promise<void> {
  const { scenarios, parts, all } = partsOf(values);
  const scale = scaleOf(values);
  const store = storeOf(values);
  fs.mkdirSync(RESULTS, { recursive: true });
  const opts: RunOptions = {
    stages: !values['no-stages'],
    appendfsync: values.appendfsync === 'always' ? 'always' : 'everysec',
    synchronous: values.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL',
    store,
    oneTopicEach: values['subscribe-to'] === 'one-topic',
  };
  const messages = scaled(num(values['jetstream-messages'], 100_000), scale);
  const reference = PRESETS['batched-random']!;
  // As many messages in flight as the batched scenario has events in flight would be 8,000;
  // the client runs fastest with 1,000 here (measured: 13,267 against 8,109 messages/s).
  const jetstream: JetStreamResult[] = parts.has('jetstream') ? await measureJetStream(jetStreamModes({ messages, referenceInFlight: 1000, singleInFlight: PRESETS.single!.concurrency })) : [];
  const results = await runScenarios(values, scenarios, opts);
  if (parts.has('fanout')) {
    const [fanout, paced] = scenariosOf(values, ['fanout', 'fanout-paced']);
    const pacedRate = values['fanout-paced-rate'] === undefined ? undefined : Number(values['fanout-paced-rate']);
    if (pacedRate !== undefined && !(pacedRate > 0)) throw new UsageError('--fanout-paced-rate must be a number of events per second');
    results.push(...(await runFanout({ fanout: fanout!, paced: paced!, subscribers: num(values['fanout-subscribers'], 100), pacedRate }, opts)));
  }
  const workerStart: WorkerStart | undefined = parts.has('worker-start') ? await measureWorkerStart(num(values.prefill, scaled(reference.prefill, scale))) : undefined;
  const writers = parts.has('writers') ? await measureWriters(scaled(num(values.events, 200_000), scale)) : [];
  const identities = Math.max(2000, scaled(200_000, scale));
  const identityCost = parts.has('identity-cost') ? await measureIdentityCost(identities, ['sqlite', 'postgres'], (l) => progress(l, true)) : [];
  const profiled = parts.has('profile') ? await measureProfiles(values, opts) : [];
  const meta = runMeta({ appendfsync: values.appendfsync, synchronous: values.synchronous, store });
  const md =
    markdown(results, meta) +
    referenceMarkdown({ results, jetstream, workerStart }) +
    writersMarkdown(writers) +
    (identityCost.length > 0 ? `\n${identityCostTable(identityCost, identities)}` : '') +
    profileMarkdown(profiled);
  process.stdout.write(`\n${md}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.writeFileSync(path.join(RESULTS, `bench-${stamp}.json`), JSON.stringify({ meta, results, profiled, jetstream, workerStart, writers, identityCost: identityCost.map((m) => ({ store: m.store, bytesPerIdentity: slope(m, (x) => x.bytes) })) }, null, 2));
  // Only a full run at full size says where things stand; any run adds its tables.
  const full = all && scale === 1;
  if (!values['no-write']) writeBenchmarks(path.join(ROOT, 'BENCHMARKS.md'), { run: { results, jetstream, workerStart, identityCost }, meta, tables: md, full });
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
