// What a committer has done, for the heartbeat and the metrics: counts, the error of a
// failing spell, and the size and duration of each group commit.
import { BATCH_EVENTS_BOUNDS, COMMIT_SECONDS_BOUNDS, emptyHistogram, observe } from '../../shared/histogram.js';
import type { CommitterStats } from './committer.js';

export class CommitCounters {
  private readonly s: CommitterStats = {
    commits: 0,
    jobs: 0,
    events: 0,
    lastError: null,
    batchEvents: emptyHistogram(BATCH_EVENTS_BOUNDS),
    commitSeconds: emptyHistogram(COMMIT_SECONDS_BOUNDS),
  };

  /** A commit failed; true when it is the first of a failing spell. */
  failed(message: string): boolean {
    const first = this.s.lastError === null;
    this.s.lastError = message;
    return first;
  }

  /** A group of jobs committed; true when it ends a failing spell. */
  committed(jobs: number, events: number, ms: number): boolean {
    const recovered = this.s.lastError !== null;
    this.s.lastError = null;
    this.s.commits++;
    this.s.jobs += jobs;
    this.s.events += events;
    observe(this.s.batchEvents, events);
    observe(this.s.commitSeconds, ms / 1000);
    return recovered;
  }

  /** A copy, safe to keep. */
  snapshot(): CommitterStats {
    const s = this.s;
    return {
      ...s,
      batchEvents: { ...s.batchEvents, counts: [...s.batchEvents.counts] },
      commitSeconds: { ...s.commitSeconds, counts: [...s.commitSeconds.counts] },
    };
  }
}
