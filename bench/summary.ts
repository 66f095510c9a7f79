// BENCHMARKS.md as a report: its top section says where things stand (the latest full run
// against every target), and below it each run's tables, newest first. `npm run bench`
// calls writeBenchmarks once a run is over; a full run (every scenario) rewrites the top
// section, any run adds its tables. Older history lives in bench-results/history/.
import fs from 'node:fs';
import { slope, type IdentityCost } from './identity-size.js';

/** What the summary reads of a scenario's result (bench/results.ts's RunResult has more). */
export type SummaryResult = {
  scenario: { name: string; events: number; rate?: number };
  /** Set when the run had live subscribers (0 included): such a run is not the scenario's own figure. */
  subscribers?: number;
  endToEndEventsPerSecond: number;
  publishEventsPerSecond: number;
  load: { latencyMs: { p99: number } };
  cpuSeconds: Record<string, number>;
  peakRssMb: Record<string, number>;
  exact: boolean;
  final: { unique_processed: number };
  storeBytes?: number;
  stream?: { expected: number; exact: boolean; latencyMs: { p99: number } };
  recovery?: { heldJobs: number; seconds: number | undefined; jobLockMs?: string | undefined };
  /** Each stage alone, measured in the same run on the scenario's shapes (bench/stage-limits.ts). */
  stages?: { bareHttp: SummaryStage; bullmq: SummaryStage; store: SummaryStage };
};

type SummaryStage = { eventsPerSecond: number; cpuMicrosPerEvent?: number | undefined };

/**
 * The stages' CPU per event alone, summed: what the pipeline cannot cost less than without
 * changing a stage itself (the HTTP server, BullMQ and Redis, the store's commit). Undefined
 * when a stage's CPU was not measured (an older run's JSON).
 */
export function stagesCpu(st: NonNullable<SummaryResult['stages']>): number | undefined {
  const parts = [st.bareHttp.cpuMicrosPerEvent, st.bullmq.cpuMicrosPerEvent, st.store.cpuMicrosPerEvent];
  return parts.every((p) => p !== undefined) ? parts.reduce((a, b) => a + b, 0) : undefined;
}

function stageFloor(r: SummaryResult): string {
  const st = r.stages;
  const floor = st === undefined ? undefined : stagesCpu(st);
  if (st === undefined || floor === undefined) return '';
  return `; the three stages alone, summed: ${floor.toFixed(1)} µs (HTTP ${st.bareHttp.cpuMicrosPerEvent!.toFixed(1)}, BullMQ with Redis ${st.bullmq.cpuMicrosPerEvent!.toFixed(1)}, store commit ${st.store.cpuMicrosPerEvent!.toFixed(1)})`;
}

/** What the summary reads of the JetStream reference (bench/jetstream.ts). */
export type SummaryJetStream = { name: 'reference' | 'single'; messages: number; inFlight: number; messagesPerSecond: number; exact: boolean; run: { latencyMs: { p99: number } } };
export type SummaryWorkerStart = { identities: number; firstCommitMs: number; filterDoneMs: number; peakRssMb: number };
export type SummaryRun = {
  results: readonly SummaryResult[];
  jetstream: readonly SummaryJetStream[];
  workerStart?: SummaryWorkerStart | undefined;
  identityCost?: readonly IdentityCost[] | undefined;
};

/** Issue 24's bound on what an expired identity costs on SQLite (UUID event_id, indexes included). */
const IDENTITY_BYTES_BOUND = 48;

export type SummaryMeta = { date: string; commit: string; cpu: string; cores: string; memory: string; node: string; store: string };

/**
 * Memory bounds (target 6). The API: the batched scenario's bodies in flight (8 requests of
 * 1,000 events) and its queue client's buffers, 199 to 206 MB peak in round two. A worker:
 * the same runtime plus its filter of stored keys, 1.9 bytes per identity (19 MB at 10 M
 * stored, SQLITE_KEY_FILTER_MAX_MB caps it), 217 to 240 MB peak in round two.
 */
export const API_RSS_BOUND_MB = 256;
export const WORKER_RSS_BOUND_MB = 320;

export const TOP_START = '<!-- top: rewritten by npm run bench after each full run -->';
export const TOP_END = '<!-- end of top -->';
const INTRO = [
  '# Benchmarks',
  '',
  'Written by `npm run bench` (bench/run.ts, bench/summary.ts): first where things stand, the latest',
  'full run against every target, then the tables of each run, newest first. Older runs, every',
  'number kept: [bench-results/history/](bench-results/history/). How to read and reproduce them:',
  '[docs/performance.md](docs/performance.md).',
  '',
].join('\n');

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
/** The service's own CPU: the load generator and the subscribers are its clients. */
const serviceMicrosPerEvent = (r: SummaryResult) =>
  (Object.entries(r.cpuSeconds)
    .filter(([k]) => k !== 'load' && k !== 'subscribers')
    .reduce((a, [, v]) => a + v, 0) *
    1e6) /
  r.scenario.events;

type Row = { target: string; measured: string; met: boolean | undefined };

const missing = (target: string): Row => ({ target, measured: 'not in this run', met: undefined });
const ratioOf = (a: number, b: number) => `${(a / b).toFixed(2)}x (${fmt(a)} against ${fmt(b)} events/s)`;

/** Targets 1 and 3: the pipeline against JetStream's deduplicating publish in the same run. */
function againstJetStream(run: SummaryRun, get: (name: string) => SummaryResult | undefined): Row[] {
  const ref = run.jetstream.find((j) => j.name === 'reference');
  const one = run.jetstream.find((j) => j.name === 'single');
  const random = get('batched-random');
  const single = get('single');
  const rows: Row[] = [];
  const refText = ref && `JetStream ${fmt(ref.messages)} messages, 20% re-sent ids, ${fmt(ref.inFlight)} in flight`;
  if (random && ref) {
    const r = random.endToEndEventsPerSecond / ref.messagesPerSecond;
    rows.push({ target: "batched random ids at 10 M stored ≥ 3.5x JetStream's deduplicating publish", measured: `${r.toFixed(2)}x (${fmt(random.endToEndEventsPerSecond)} events/s against ${refText}: ${fmt(ref.messagesPerSecond)}/s)`, met: r >= 3.5 });
  } else rows.push(missing('batched against JetStream'));
  if (single && ref) {
    const r = single.endToEndEventsPerSecond / ref.messagesPerSecond;
    // The target's reference is the same as target 1's; JetStream published as the scenario does is shown beside.
    const beside = one ? `; against JetStream one message at a time, ${one.inFlight} in flight (${fmt(one.messagesPerSecond)}/s, p99 ${one.run.latencyMs.p99.toFixed(1)} ms): ${(single.endToEndEventsPerSecond / one.messagesPerSecond).toFixed(2)}x` : '';
    rows.push({ target: 'one event per request ≥ 0.4x JetStream (the reference of the row above)', measured: `${r.toFixed(2)}x (${fmt(single.endToEndEventsPerSecond)} against ${fmt(ref.messagesPerSecond)}/s)${beside}`, met: r >= 0.4 });
  } else rows.push(missing('one event per request against JetStream'));
  return rows;
}

/** Target 5: the stream's cost per delivered message, and its latency at half the rate. */
function fanoutRows(results: readonly SummaryResult[]): Row[] {
  const base = results.find((r) => r.scenario.name === 'fanout' && r.subscribers === 0);
  const loaded = results.find((r) => r.scenario.name === 'fanout' && (r.subscribers ?? 0) > 0);
  const paced = results.find((r) => r.scenario.name === 'fanout-paced');
  const rows: Row[] = [];
  if (base && loaded?.stream) {
    const extra = (loaded.cpuSeconds.api ?? 0) - (base.cpuSeconds.api ?? 0);
    const micros = (extra * 1e6) / loaded.stream.expected;
    rows.push({
      target: `fan-out: API CPU per delivered message ≤ 0.5 µs, ${loaded.subscribers} subscribers of one topic`,
      measured: `${micros.toFixed(2)} µs (API ${loaded.cpuSeconds.api} s against ${base.cpuSeconds.api} s without subscribers, ${fmt(loaded.stream.expected)} messages; every one delivered: ${loaded.stream.exact ? 'yes' : '**no**'})`,
      met: micros <= 0.5 && loaded.stream.exact,
    });
  } else rows.push(missing('fan-out cost'));
  if (paced?.stream && paced.scenario.rate !== undefined) {
    const p99 = paced.stream.latencyMs.p99;
    const kept = paced.publishEventsPerSecond / paced.scenario.rate;
    rows.push({
      target: `fan-out paced at half the rate without subscribers: ${paced.subscribers} subscribers get every event, delivery p99 < 250 ms, the pace met`,
      measured: `p99 ${p99} ms; every event delivered: ${paced.stream.exact ? 'yes' : '**no**'}; ${fmt(paced.publishEventsPerSecond)} of ${fmt(paced.scenario.rate)} events/s asked (${Math.round(kept * 100)}%)`,
      met: p99 < 250 && paced.stream.exact && kept >= 0.95,
    });
  } else rows.push(missing('fan-out paced'));
  return rows;
}

/** Target 6 and issue 24's figures: memory, a worker's start, bytes per stored identity. */
function footprintRows(run: SummaryRun, get: (name: string) => SummaryResult | undefined): Row[] {
  const rows: Row[] = [];
  const random = get('batched-random');
  if (random) {
    const workers = Object.entries(random.peakRssMb).filter(([k]) => k.startsWith('worker-'));
    const api = random.peakRssMb.api ?? NaN;
    rows.push({
      target: `memory, batched random ids at 10 M stored: API peak RSS ≤ ${API_RSS_BOUND_MB} MB, each worker's ≤ ${WORKER_RSS_BOUND_MB} MB`,
      measured: `api ${api}, ${workers.map(([k, v]) => `${k} ${v}`).join(', ')} MB`,
      met: api <= API_RSS_BOUND_MB && workers.length > 0 && workers.every(([, v]) => v <= WORKER_RSS_BOUND_MB),
    });
  } else rows.push(missing('memory'));
  const w = run.workerStart;
  rows.push(
    w
      ? { target: 'worker start: from its spawn to its first commit ≤ 2 s, 10 M stored', measured: `${fmt(w.firstCommitMs)} ms at ${fmt(w.identities)} stored (filter built after ${(w.filterDoneMs / 1000).toFixed(1)} s, peak RSS ${Math.round(w.peakRssMb)} MB)`, met: w.firstCommitMs <= 2000 }
      : missing('worker start'),
  );
  const costs = run.identityCost ?? [];
  const sqlite = costs.find((c) => c.store === 'sqlite');
  const bytes = (c: IdentityCost) => slope(c, (s) => s.bytes);
  rows.push(
    sqlite
      ? {
          target: `an expired identity (36-character UUID event_id) on SQLite ≤ ${IDENTITY_BYTES_BOUND} bytes, indexes included`,
          measured: costs.map((c) => `${c.store} ${bytes(c).toFixed(1)} bytes (100 M: ${((bytes(c) * 1e8) / 1e9).toFixed(1)} GB)`).join('; '),
          met: bytes(sqlite) <= IDENTITY_BYTES_BOUND,
        }
      : missing('identity cost'),
  );
  const sized = ['batched-random', 'batched-ordered'].map(get).filter((r): r is SummaryResult => r?.storeBytes !== undefined);
  rows.push(
    sized.length > 0
      ? { target: 'store size at the end of the 10 M scenarios, bytes per stored identity (no target)', measured: sized.map((r) => `${r.scenario.name} ${Math.round(r.storeBytes! / r.final.unique_processed)} (${(r.storeBytes! / 1e9).toFixed(2)} GB, ${fmt(r.final.unique_processed)} stored)`).join('; '), met: undefined }
      : missing('store size'),
  );
  return rows;
}

/** Each target of the full run, measured against it; a scenario missing from the run is said so. */
export function targetRows(run: SummaryRun): Row[] {
  const own = run.results.filter((r) => r.subscribers === undefined);
  const get = (name: string) => own.find((r) => r.scenario.name === name);
  const rows: Row[] = [];
  const random = get('batched-random');
  const ordered = get('batched-ordered');
  const single = get('single');
  if (random) {
    const micros = serviceMicrosPerEvent(random);
    rows.push({ target: 'batched random ids at 10 M stored: service CPU ≤ 20 µs per event (API, workers, Redis)', measured: `${micros.toFixed(1)} µs${stageFloor(random)}`, met: micros <= 20 });
  } else rows.push(missing('batched random ids'));
  rows.push(...againstJetStream(run, get));
  if (random && ordered) {
    const ratio = ordered.endToEndEventsPerSecond / random.endToEndEventsPerSecond;
    rows.push({ target: 'batched ordered ids ≥ 1.5x random ids, both at 10 M stored', measured: ratioOf(ordered.endToEndEventsPerSecond, random.endToEndEventsPerSecond), met: ratio >= 1.5 });
  } else rows.push(missing('ordered ids'));
  if (single) {
    const micros = serviceMicrosPerEvent(single);
    const p99 = single.load.latencyMs.p99;
    rows.push({ target: 'one event per request, 64 in flight: p99 < 25 ms, service CPU ≤ 110 µs per event', measured: `p99 ${p99.toFixed(1)} ms, ${micros.toFixed(1)} µs${stageFloor(single)}`, met: micros <= 110 && p99 < 25 });
  } else rows.push(missing('single'));
  const pgBatched = get('pg-batched');
  const empty = get('empty-batched');
  if (pgBatched && empty) {
    const share = pgBatched.endToEndEventsPerSecond / empty.endToEndEventsPerSecond;
    // The store stage alone bounds what the pipeline on PostgreSQL can reach.
    const alone = pgBatched.stages?.store.eventsPerSecond;
    const limit = alone === undefined ? '' : `; PostgreSQL's commits alone (store stage, same run): ${fmt(alone)} events/s, ${Math.round((100 * alone) / empty.endToEndEventsPerSecond)}% of SQLite's pipeline`;
    rows.push({ target: 'PostgreSQL batched ≥ 80% of SQLite, same shape, both on an empty store', measured: `${Math.round(share * 100)}% (${fmt(pgBatched.endToEndEventsPerSecond)} against ${fmt(empty.endToEndEventsPerSecond)} events/s)${limit}`, met: share >= 0.8 });
  } else rows.push(missing('PostgreSQL batched'));
  const pgSingle = get('pg-single');
  if (pgSingle) {
    const p99 = pgSingle.load.latencyMs.p99;
    rows.push({ target: 'PostgreSQL one event per request, 64 in flight: p99 < 25 ms', measured: `p99 ${p99.toFixed(1)} ms (${fmt(pgSingle.endToEndEventsPerSecond)} events/s)`, met: p99 < 25 });
  } else rows.push(missing('PostgreSQL single'));
  rows.push(...fanoutRows(run.results), ...footprintRows(run, get));
  const recovery = get('recovery');
  if (recovery?.recovery) {
    const s = recovery.recovery.seconds;
    rows.push({
      target: "recovery: a killed worker's jobs committed by another within 10 s",
      measured: s === undefined ? `never (${recovery.recovery.heldJobs} jobs held)` : `${s.toFixed(1)} s (${recovery.recovery.heldJobs} jobs held at the kill)`,
      met: s !== undefined && s <= 10,
    });
  } else rows.push(missing('recovery'));
  const inexact = [...run.results.filter((r) => !r.exact).map((r) => r.scenario.name), ...run.jetstream.filter((j) => !j.exact).map((j) => `JetStream ${j.name}`)];
  rows.push({
    target: 'every count exact: each event stored once, received = stored + dropped (JetStream: each copy acknowledged as a duplicate)',
    measured: inexact.length === 0 ? `yes, in all ${run.results.length} runs and ${run.jetstream.length} JetStream runs` : `**no** in ${inexact.join(', ')}`,
    met: inexact.length === 0,
  });
  return rows;
}

/** The top section: the full run's date, commit and machine, and each target met or not. */
export function topSection(run: SummaryRun, meta: SummaryMeta): string {
  const lines = [
    TOP_START,
    `## Where things stand: the full run of ${meta.date}, commit ${meta.commit}`,
    '',
    `${meta.cpu}, ${meta.cores} cores, ${meta.memory}; Node ${meta.node}; store ${meta.store}. Load generator and service share the cores. Its tables are the first under "Runs".`,
    '',
    '| target | measured | met |',
    '| --- | --- | --- |',
    ...targetRows(run).map((r) => `| ${r.target} | ${r.measured} | ${r.met === undefined ? '–' : r.met ? 'yes' : '**no**'} |`),
    TOP_END,
  ];
  return lines.join('\n') + '\n';
}

const RUNS = '## Runs';

/**
 * BENCHMARKS.md after a run: the intro, the top section (replaced when `top` is given,
 * kept otherwise), then "## Runs" with this run's tables first. Tables written by older
 * versions of the bench (a file with no top section) are kept below as they were.
 */
export function updateBenchmarks(old: string, tables: string, top: string | undefined): string {
  let keptTop = '';
  let runs = old;
  const start = old.indexOf(TOP_START);
  const end = old.indexOf(TOP_END);
  if (start >= 0 && end > start) {
    keptTop = old.slice(start, end + TOP_END.length) + '\n';
    runs = old.slice(end + TOP_END.length);
  }
  const at = runs.indexOf(`${RUNS}\n`);
  // Runs are the level-3 sections under "## Runs"; an old file's level-2 run sections come along.
  runs = at >= 0 ? runs.slice(at + RUNS.length + 1) : runs.replace(/^# Benchmarks\n[\s\S]*?(?=^## )/m, '');
  runs = runs.replace(/^\n+/, '');
  const demoted = tables.replace(/^## /gm, '### ');
  return `${INTRO}\n${top ?? keptTop}\n${RUNS}\n\n${demoted.trimEnd()}\n${runs === '' ? '' : `\n${runs}`}`;
}

/** What npm run bench calls: rewrites BENCHMARKS.md in place (`full`: every scenario ran). */
export function writeBenchmarks(file: string, o: { run: SummaryRun; meta: SummaryMeta; tables: string; full: boolean }): void {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  fs.writeFileSync(file, updateBenchmarks(old, o.tables, o.full ? topSection(o.run, o.meta) : undefined));
}
