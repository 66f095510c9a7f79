// BENCHMARKS.md as a report: its top section says where things stand (the latest full run
// against every target), and below it each run's tables, newest first. `npm run bench`
// calls writeBenchmarks once a run is over; a full run (every scenario) rewrites the top
// section, any run adds its tables. Older history lives in bench-results/history/.
import fs from 'node:fs';

/** What the summary reads of a scenario's result (bench/run.ts's RunResult has more). */
export type SummaryResult = {
  scenario: { name: string; events: number };
  /** Set when the run had live subscribers: such a run is not the scenario's own figure. */
  subscribers?: number;
  endToEndEventsPerSecond: number;
  load: { latencyMs: { p99: number } };
  cpuSeconds: Record<string, number>;
  exact: boolean;
  recovery?: { heldJobs: number; seconds: number | undefined; jobLockMs?: string | undefined };
};

export type SummaryMeta = { date: string; commit: string; cpu: string; cores: string; memory: string; node: string; store: string };

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

/** Each target of the full run, measured against it; a scenario missing from the run is said so. */
export function targetRows(results: readonly SummaryResult[]): Row[] {
  const own = results.filter((r) => r.subscribers === undefined);
  const get = (name: string) => own.find((r) => r.scenario.name === name);
  const missing = (name: string): Row => ({ target: name, measured: 'not in this run', met: undefined });
  const rows: Row[] = [];
  const empty = get('empty-batched');
  const random = get('batched-random');
  const ordered = get('batched-ordered');
  const single = get('single');
  const recovery = get('recovery');
  if (empty && random) {
    const share = random.endToEndEventsPerSecond / empty.endToEndEventsPerSecond;
    rows.push({
      target: 'growth: batched random ids at 10 M stored ≥ 75% of an empty store',
      measured: `${Math.round(share * 100)}% (${fmt(random.endToEndEventsPerSecond)} against ${fmt(empty.endToEndEventsPerSecond)} events/s)`,
      met: share >= 0.75,
    });
  } else rows.push(missing('growth'));
  if (random) {
    rows.push({
      target: 'batched random ids at 10 M stored ≥ 60,000 events/s',
      measured: `${fmt(random.endToEndEventsPerSecond)} events/s`,
      met: random.endToEndEventsPerSecond >= 60_000,
    });
  }
  if (random && ordered) {
    const ratio = ordered.endToEndEventsPerSecond / random.endToEndEventsPerSecond;
    rows.push({
      target: 'batched ordered ids ≥ 1.5x random ids, both at 10 M stored',
      measured: `${ratio.toFixed(2)}x (${fmt(ordered.endToEndEventsPerSecond)} events/s)`,
      met: ratio >= 1.5,
    });
  } else rows.push(missing('ordered ids'));
  if (single) {
    const micros = serviceMicrosPerEvent(single);
    const p99 = single.load.latencyMs.p99;
    rows.push({
      target: 'one event per request, 64 in flight: service CPU ≤ 160 µs per event, p99 < 25 ms',
      measured: `${micros.toFixed(1)} µs, p99 ${p99.toFixed(1)} ms`,
      met: micros <= 160 && p99 < 25,
    });
    rows.push({
      target: 'one event per request: ≥ 10,000 events/s end to end',
      measured: `${fmt(single.endToEndEventsPerSecond)} events/s`,
      met: single.endToEndEventsPerSecond >= 10_000,
    });
  } else rows.push(missing('single'));
  if (recovery?.recovery) {
    const s = recovery.recovery.seconds;
    rows.push({
      target: "recovery: a killed worker's jobs committed by another within 10 s",
      measured: s === undefined ? `never (${recovery.recovery.heldJobs} jobs held)` : `${s.toFixed(1)} s (${recovery.recovery.heldJobs} jobs held at the kill)`,
      met: s !== undefined && s <= 10,
    });
  } else rows.push(missing('recovery'));
  const inexact = own.filter((r) => !r.exact).map((r) => r.scenario.name);
  rows.push({
    target: 'every count exact: each event stored once, received = stored + dropped',
    measured: inexact.length === 0 ? `yes, in all ${own.length} scenarios` : `**no** in ${inexact.join(', ')}`,
    met: inexact.length === 0,
  });
  return rows;
}

/** The top section: the full run's date, commit and machine, and each target met or not. */
export function topSection(results: readonly SummaryResult[], meta: SummaryMeta): string {
  const lines = [
    TOP_START,
    `## Where things stand: the full run of ${meta.date}, commit ${meta.commit}`,
    '',
    `${meta.cpu}, ${meta.cores} cores, ${meta.memory}; Node ${meta.node}; store ${meta.store}. Load generator and service share the cores. Its tables are the first under "Runs".`,
    '',
    '| target | measured | met |',
    '| --- | --- | --- |',
    ...targetRows(results).map((r) => `| ${r.target} | ${r.measured} | ${r.met === undefined ? '–' : r.met ? 'yes' : '**no**'} |`),
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
export function writeBenchmarks(file: string, o: { results: readonly SummaryResult[]; meta: SummaryMeta; tables: string; full: boolean }): void {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  fs.writeFileSync(file, updateBenchmarks(old, o.tables, o.full ? topSection(o.results, o.meta) : undefined));
}
