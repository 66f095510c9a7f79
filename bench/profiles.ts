// The bench's `profile` part: runs of their own, after the measured ones, with every Node
// process of the service sampled by V8's profiler from the first request until the queue
// drained. Profiling costs its process some CPU, so no target is read from these runs:
// they say where the time of the runs above goes, as shares.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { scenariosOf, type BenchArgs } from './args.js';
import type { ProfileFrame } from './cpu-profile.js';
import { fmt } from './report.js';
import type { RunResult } from './results.js';
import { runScenario, type RunOptions } from './scenario.js';

/** The shapes profiled: batched and one event per request on SQLite, batched on PostgreSQL. */
export const PROFILED = ['empty-batched', 'single', 'pg-batched'];
/** Share of each scenario's events the profiled run publishes: seconds of samples suffice. */
const PROFILED_SHARE = 0.4;
/** Busy samples (0.5 ms each) below which a process' frames are not ranked. */
const MIN_RANKED_SAMPLES = 100;

export async function measureProfiles(values: BenchArgs, opts: RunOptions): Promise<RunResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-bench-profiles-'));
  try {
    const results: RunResult[] = [];
    for (const s of scenariosOf(values, PROFILED)) {
      const sized = { ...s, events: Math.max(100, Math.round(s.events * PROFILED_SHARE)) };
      results.push(await runScenario(sized, { ...opts, stages: false, subscribers: undefined, profileDir: dir }));
    }
    return results;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const frames = (list: ProfileFrame[], n: number, share: (f: ProfileFrame) => number) => list.slice(0, n).map((f) => `\`${f.frame}\` ${pct(share(f))}`).join('; ');

/** One row per profiled process: its CPU per event, its heaviest frames, this project's largest subtrees. */
export function profileMarkdown(results: RunResult[]): string {
  const profiled = results.filter((r) => r.profiles);
  if (profiled.length === 0) return '';
  const lines = [
    '',
    'CPU profiles, in runs of their own after the measured ones (V8\'s sampling profiler in each Node process of the service, every 0.5 ms, from the first request until the queue drained; profiling costs CPU, so read shares, not rates). Shares are of each process\'s busy samples; "with callees" counts a frame once per sample wherever it is in the stack:',
    '',
    '| run | process | its CPU µs per event | busy samples | heaviest frames, own time | this project\'s code, with callees |',
    '| --- | --- | ---: | ---: | --- | --- |',
  ];
  for (const r of profiled) {
    for (const [name, p] of Object.entries(r.profiles!)) {
      const micros = ((r.cpuSeconds[name] ?? 0) * 1e6) / r.scenario.events;
      // A process that barely ran (a standby worker) has no ranking worth reading.
      const idle = p.busySamples < MIN_RANKED_SAMPLES ? `too few busy samples to rank` : undefined;
      lines.push(`| ${r.scenario.name} (profiled), ${fmt(r.scenario.events)} events, ${r.store} | ${name} | ${micros.toFixed(1)} | ${fmt(p.busySamples)} | ${idle ?? frames(p.frames, 8, (f) => f.self)} | ${idle ?? frames(p.ownCode, 8, (f) => f.total)} |`);
    }
  }
  return lines.join('\n') + '\n';
}
