// The store stage alone with 1, 2 and 4 concurrent writers, on both stores.
import { progress } from './progress.js';
import { fmt } from './report.js';
import type { WritersResult } from './results.js';
import { runStoreStage } from './stages/writers.js';

/**
 * The store stage alone with 1, 2 and 4 concurrent writers (each its own process, as worker
 * processes are), on both stores. Rounds run 1, 2, 4 back to back, three times: on a shared
 * machine the load drifts over minutes, so ratios within a round say more than far-apart rates.
 */
export async function measureWriters(events: number): Promise<WritersResult[]> {
  const out: WritersResult[] = [];
  for (const kind of ['sqlite', 'postgres'] as const) {
    const byWriters = new Map<number, WritersResult>();
    for (let round = 0; round < 3; round++) {
      let one = 0;
      for (const writers of [1, 2, 4]) {
        const r = await runStoreStage({ kind, writers, events, batch: 1000, jobsPerCommit: 20, dupRatio: 0.3, ids: 'random', prefill: 0 });
        progress(`writers: ${kind} ${writers} writer(s), round ${round + 1}: ${fmt(r.eventsPerSecond)} events/s`, true);
        let entry = byWriters.get(writers);
        if (entry === undefined) byWriters.set(writers, (entry = { store: kind, writers, rounds: [], ratios: [] }));
        entry.rounds.push(r.eventsPerSecond);
        if (writers === 1) one = r.eventsPerSecond;
        else entry.ratios.push(r.eventsPerSecond / one);
      }
    }
    out.push(...byWriters.values());
  }
  return out;
}
