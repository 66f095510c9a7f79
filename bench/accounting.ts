// The books of one scenario: what the counters should say after it, whether they do, and the
// CPU each process spent on it.
import fs from 'node:fs';
import type { Stats } from '../tools/harness/http.js';
import type { LoadResult } from './load.js';
import { cpuSeconds } from './procstat.js';
import type { Counters } from './results.js';
import type { Scenario } from './scenarios.js';

export const committedJobs = (st: Stats) => (st.store as { committed_jobs: number }).committed_jobs;
export const sum = (cpu: Record<string, number>) => Object.values(cpu).reduce((a, b) => a + b, 0);
/** What the service itself spends: the load generator and the subscribers are its clients. */
export const serviceCpuSeconds = (cpu: Record<string, number>) => sum(Object.fromEntries(Object.entries(cpu).filter(([k]) => k !== 'load' && k !== 'subscribers')));

/** CPU seconds by process now, to subtract at the end. */
export function cpuSnapshot(pids: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
}

/** CPU seconds each process used since `before`. */
export function cpuSince(pids: Record<string, number | undefined>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    // A process killed on purpose (recovery) has left /proc: it is left out.
    Object.entries(pids)
      .filter(([, pid]) => pid !== undefined && fs.existsSync(`/proc/${pid}`))
      .map(([k, pid]) => [k, +(cpuSeconds(pid) - (before[k] ?? 0)).toFixed(1)]),
  );
}

/** The counters after the scenario, if every event was counted once: its copies dropped. */
export function expectedCounters(s: Scenario, base: Stats, load: LoadResult): Counters {
  return {
    received: base.received + s.events,
    unique_processed: base.unique_processed + load.originals,
    duplicate_dropped: base.duplicate_dropped + (s.events - load.originals),
  };
}

export function booksBalance(final: Stats, expected: Counters): boolean {
  return (
    final.received === expected.received &&
    final.unique_processed === expected.unique_processed &&
    final.duplicate_dropped === expected.duplicate_dropped &&
    final.pending === 0
  );
}

/** Events per topic stored during the scenario, from the stats before and after. */
export function topicDelta(base: Stats, final: Stats): Record<string, number> {
  const perTopic = (st: Stats) => (st.per_topic ?? {}) as Record<string, number>;
  return Object.fromEntries(Object.entries(perTopic(final)).map(([t, n]) => [t, n - (perTopic(base)[t] ?? 0)]));
}
