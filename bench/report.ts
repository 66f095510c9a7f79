// The Markdown tables of a run, as printed and as BENCHMARKS.md keeps them.
import { serviceCpuSeconds, sum } from './accounting.js';
import type { RunResult, WritersResult } from './results.js';
import { streamSection } from './stream-report.js';
import { stagesCpu } from './summary.js';

export type RunMeta = Record<string, string>;

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const label = (r: RunResult) =>
  r.subscribers === undefined ? r.scenario.name : `${r.scenario.name}, ${r.subscribers} subscribers${r.oneTopicEach && r.subscribers > 0 ? ' of one topic each' : ''}`;

function scenarioTable(results: RunResult[], meta: RunMeta): string[] {
  const lines = [
    `## ${meta.date} — commit ${meta.commit}`,
    '',
    `Machine: ${meta.cpu}, ${meta.cores} cores, ${meta.memory}; Node ${meta.node}; ${meta.redis}; store ${meta.store}${meta.store === 'sqlite' ? ` (synchronous ${meta.synchronous})` : ' (PostgreSQL on the same machine)'}; Redis appendfsync ${meta.appendfsync}. API, workers, Redis${meta.store === 'postgres' ? ', PostgreSQL' : ''} and the load generator share the cores.`,
    '',
    '| scenario | settings | end to end events/s | publish events/s (req/s) | p50 / p99 ms | lag max / at half / at end | peak RSS MB | exact | target |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |',
  ];
  for (const r of results) {
    const s = r.scenario;
    lines.push(
      `| ${label(r)} | ${fmt(s.events)} events, batch ${s.batch}, ${s.concurrency} in flight, ${s.dupRatio * 100}% copies, ${s.workers} workers, ${s.ids} ids, prefill ${fmt(s.prefill)}, ${r.store}${s.wait === undefined ? '' : `, ?wait=${s.wait} (${fmt(r.load.processed)} events answered 200 processed)`} | **${fmt(r.endToEndEventsPerSecond)}** | ${fmt(r.publishEventsPerSecond)} (${fmt(r.publishRequestsPerSecond)}) | ${r.load.latencyMs.p50.toFixed(1)} / ${r.load.latencyMs.p99.toFixed(1)} | ${fmt(r.lag.maxEvents)} / ${fmt(r.lag.atHalf)} / ${fmt(r.lag.atEnd)} | ${Object.entries(r.peakRssMb).map(([k, v]) => `${k} ${v}`).join(', ')} | ${r.exact ? 'yes' : `**no** (${JSON.stringify(r.final)} vs ${JSON.stringify(r.expected)})`} | ${s.target} |`,
    );
  }
  return lines;
}

function cpuTable(results: RunResult[]): string[] {
  const lines = ['', 'CPU seconds used by each process from the first request until the queue was drained (the machine has 2 cores, so at most 2 s of CPU per second):', ''];
  lines.push(
    '| scenario | seconds | CPU s by process | CPU µs per event, all processes | CPU µs per event, service (API, workers, Redis; PostgreSQL\'s server on its store) |',
    '| --- | ---: | --- | ---: | ---: |',
  );
  for (const r of results) {
    const perEvent = (seconds: number) => ((seconds * 1e6) / r.scenario.events).toFixed(1);
    lines.push(
      `| ${label(r)} | ${r.endToEndSeconds.toFixed(1)} | ${Object.entries(r.cpuSeconds).map(([k, v]) => `${k} ${v}`).join(', ')} | ${perEvent(sum(r.cpuSeconds))} | **${perEvent(serviceCpuSeconds(r.cpuSeconds))}** |`,
    );
  }
  return lines;
}

function stagesTable(results: RunResult[]): string[] {
  const staged = results.filter((r) => r.stages);
  if (staged.length === 0) return [];
  const lines = ['', 'Stage limits measured in the same run (each stage alone, same shapes):', ''];
  lines.push(
    '| scenario | bare node:http events/s (req/s) | its CPU µs per event | BullMQ add+process events/s (events per job, as the API made them) | its CPU µs per event, Redis included | store commit events/s | its CPU µs per event (PostgreSQL: the server\'s included) | the three stages\' CPU µs per event, summed |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const micros = (n: number | undefined) => (n === undefined ? '–' : n.toFixed(1));
  for (const r of staged) {
    const st = r.stages!;
    lines.push(
      `| ${r.scenario.name} | ${fmt(st.bareHttp.eventsPerSecond)} (${fmt(st.bareHttp.requestsPerSecond ?? 0)}) | ${micros(st.bareHttp.cpuMicrosPerEvent)} | ${fmt(st.bullmq.eventsPerSecond)} (${st.bullmq.eventsPerJob ?? '–'}) | ${micros(st.bullmq.cpuMicrosPerEvent)} | ${fmt(st.store.eventsPerSecond)} | ${micros(st.store.cpuMicrosPerEvent)} | ${micros(stagesCpu(st))} |`,
    );
  }
  return lines;
}

/** The sentences comparing scenarios: growth, ordered ids, recovery. */
function comparisons(results: RunResult[]): string[] {
  const lines: string[] = [];
  const growth = results.find((r) => r.scenario.name === 'batched-random');
  const empty = results.find((r) => r.scenario.name === 'empty-batched');
  if (growth && empty) {
    lines.push(
      '',
      `Growth: batched rate at ${fmt(growth.scenario.prefill)} stored is ${((100 * growth.endToEndEventsPerSecond) / empty.endToEndEventsPerSecond).toFixed(0)}% of the rate on an empty store.`,
    );
  }
  const ordered = results.find((r) => r.scenario.name === 'batched-ordered');
  if (growth && ordered && growth.scenario.prefill === ordered.scenario.prefill) {
    lines.push(
      '',
      `Ordered ids: batched at ${fmt(ordered.scenario.prefill)} stored runs at ${(ordered.endToEndEventsPerSecond / growth.endToEndEventsPerSecond).toFixed(2)}x the rate of random ids (target >= 1.5x).`,
    );
  }
  for (const r of results.filter((x) => x.recovery)) {
    const rec = r.recovery!;
    lines.push(
      '',
      `Recovery (${label(r)}): worker-1 was killed (SIGKILL) a third of the way through and not restarted; ${rec.heldJobs} jobs were active at the kill, and all of them were committed ${rec.seconds === undefined ? '**never** (within 120 s)' : `**${rec.seconds.toFixed(1)} s**`} after it, by the surviving worker (JOB_LOCK_MS ${rec.jobLockMs}; target: within 10 s).`,
    );
  }
  return lines;
}

function streamTable(results: RunResult[]): string[] {
  const streamed = results.filter((r) => r.subscribers !== undefined);
  if (streamed.length === 0) return [];
  return [
    streamSection(
      streamed.map((r) => ({
        name: r.scenario.name,
        subscribers: r.subscribers!,
        follows: r.stream?.follows ?? (!r.oneTopicEach ? 'every event' : r.scenario.topics === 1 ? 'topic-0 (all of them)' : `one of ${r.scenario.topics} topics each`),
        endToEnd: r.endToEndEventsPerSecond,
        publish: r.publishEventsPerSecond,
        stream: r.stream,
        commits: r.commits,
        cpu: r.cpuSeconds,
        seconds: r.endToEndSeconds,
      })),
    ),
  ];
}

export function markdown(results: RunResult[], meta: RunMeta): string {
  const lines = [...scenarioTable(results, meta), ...cpuTable(results), ...stagesTable(results), ...comparisons(results), ...streamTable(results)];
  return lines.join('\n') + '\n';
}

export function writersMarkdown(results: WritersResult[]): string {
  if (results.length === 0) return '';
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const lines = [
    '',
    'Store stage alone with concurrent writers (each a process with its own connection; jobs of 1,000 events, 20 per commit, 30% copies, random ids, empty store; three rounds of 1, 2, 4 writers):',
    '',
    '| store | writers | events/s, median (rounds) | x 1 writer, median of per-round ratios |',
    '| --- | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.store} | ${r.writers} | **${fmt(median(r.rounds))}** (${r.rounds.map(fmt).join(', ')}) | ${r.ratios.length === 0 ? '1.00' : `${median(r.ratios).toFixed(2)} (${r.ratios.map((x) => x.toFixed(2)).join(', ')})`} |`,
    );
  }
  return lines.join('\n') + '\n';
}
