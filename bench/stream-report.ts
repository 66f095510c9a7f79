// What the live-stream runs report: the workers' group commits read from /metrics, and the
// Markdown section comparing a scenario's runs with and without subscribers.
import type { SubscribersResult } from './subscribers.js';

/** The workers' group commits over a run, from /metrics (their heartbeats, at most 3 s old). */
export type CommitTimes = { commits: number; meanMs: number; p99UpToMs: number; meanEvents: number };

export async function commitTimes(baseUrl: string): Promise<CommitTimes | undefined> {
  const text = await fetch(`${baseUrl}/metrics`).then((r) => r.text(), () => '');
  const sum = (name: string, le?: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && (le === undefined || l.includes(`le="${le}"`)))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const count = sum('aggregator_worker_commit_seconds_count');
  if (!(count > 0)) return undefined;
  const bounds = [...new Set([...text.matchAll(/aggregator_worker_commit_seconds_bucket\{[^}]*le="([^"]+)"/g)].map((m) => m[1]!))];
  const p99 = bounds.find((le) => sum('aggregator_worker_commit_seconds_bucket', le) >= 0.99 * count) ?? '+Inf';
  return {
    commits: count,
    meanMs: (1000 * sum('aggregator_worker_commit_seconds_sum')) / count,
    p99UpToMs: p99 === '+Inf' ? Infinity : 1000 * Number(p99),
    meanEvents: sum('aggregator_worker_batch_events_sum') / Math.max(1, sum('aggregator_worker_batch_events_count')),
  };
}

/** The Markdown section for runs with and without subscribers of the same scenario. */
export function streamSection(
  rows: {
    name: string;
    subscribers: number;
    follows: string;
    endToEnd: number;
    publish: number;
    stream?: SubscribersResult;
    commits?: CommitTimes;
    /** CPU seconds by process (the subscribers' client included), and the run's length. */
    cpu: Record<string, number>;
    seconds: number;
  }[],
): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    '',
    'Live stream (GET /events/stream): the same scenario with N subscribers, run in one client process of their own. Delivery latency runs from the end of the worker\'s commit that stored an event (the `committed_at` of its commit notice) to the event\'s receipt by a subscriber; one clock, same machine. The group commits\' own duration is shown beside (mean, and the bucket bound under which 99% fall).',
    '',
    '| scenario | subscribers | following | end to end events/s | publish events/s | publish vs mean of runs with none | group commit mean / p99 ms (events) | delivery p50 / p90 / p99 / max ms | every subscriber got every event once, in order | streams cut and resumed | subscriber process CPU s | API CPU s | CPU s, all processes (cores busy) | runs with none over this run, CPU s per event |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const total = (cpu: Record<string, number>) => Object.values(cpu).reduce((n, v) => n + v, 0);
  for (const r of rows) {
    // Against the mean of the runs without subscribers: on a shared machine, runs drift.
    const bases = rows.filter((x) => x.name === r.name && x.subscribers === 0 && x.follows === r.follows);
    const base = bases.reduce((n, x) => n + x.publish, 0) / bases.length;
    const ratio = bases.length > 0 ? `${((100 * r.publish) / base).toFixed(0)}%` : '–';
    // Same events in every run: while the cores are full, the rate can be at most this
    // share of the runs without subscribers, whatever the stream's latency.
    const baseCpu = bases.reduce((n, x) => n + total(x.cpu), 0) / bases.length;
    const cpuShare = r.subscribers === 0 ? '(baseline)' : bases.length === 0 ? '–' : `${((100 * baseCpu) / total(r.cpu)).toFixed(0)}%`;
    const s = r.stream;
    lines.push(
      `| ${r.name} | ${r.subscribers} | ${r.follows} | ${fmt(r.endToEnd)} | ${fmt(r.publish)} | ${r.subscribers === 0 ? '(baseline)' : ratio} | ${r.commits ? `${r.commits.meanMs.toFixed(0)} / ≤ ${r.commits.p99UpToMs} (${fmt(r.commits.meanEvents)})` : '–'} | ${s ? `${s.latencyMs.p50} / ${s.latencyMs.p90} / **${s.latencyMs.p99}** / ${s.latencyMs.max}${s.unmeasured > 0 ? ` (${fmt(s.unmeasured)} without a notice)` : ''}` : '–'} | ${s ? (s.exact ? `yes (${fmt(s.expected)} in all)` : `**no** (${fmt(s.delivered.min)} to ${fmt(s.delivered.max)} per subscriber; ${fmt(s.expected)} due in all)`) : '–'} | ${s ? s.reconnects : '–'} | ${s ? s.cpuSeconds.toFixed(1) : '–'} | ${r.cpu.api ?? '–'} | ${total(r.cpu).toFixed(1)} (${(total(r.cpu) / r.seconds).toFixed(2)}) | ${cpuShare} |`,
    );
  }
  lines.push(
    '',
    'The last column is a ceiling measured in the run: the CPU per event of the runs without subscribers over that of this run (every process, the subscribers\' client included, on the same cores). Where the cores are busy in both, the publishing rate with subscribers cannot exceed that share of the rate without.',
    '',
    'Targets (round three): the API\'s extra CPU over the run without subscribers, per delivered message, at most 0.5 µs with 100 subscribers of one topic; with publishing paced at half the rate of the run without subscribers, every event delivered to each of them with delivery p99 < 250 ms and the pace met.',
  );
  return lines.join('\n') + '\n';
}
