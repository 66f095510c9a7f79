// One notice per group commit (shared/notices.ts): live streams read from its seq, waiting
// producers get their results. Conflicts are logged here, where the commit is seen whole.
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/log.js';
import { publishNotice, type JobResults } from '../../shared/notices.js';
import type { JobOutcome } from '../../shared/store/port.js';
import type { Submitted } from './committer.js';

/** Conflicts logged one by one per group commit; a flood of them is summed up after. */
const MAX_CONFLICTS_LOGGED = 20;

export function createNotifier(redis: Redis, queueName: string, log: Logger): (jobs: readonly Submitted[], outcomes: readonly JobOutcome[]) => void {
  return (jobs, outcomes) => {
    const committedAt = Date.now();
    let seq = 0;
    const replies: JobResults[] = [];
    let conflictsLogged = 0;
    outcomes.forEach((outcome, i) => {
      const job = jobs[i];
      outcome.results.forEach((r, k) => {
        if (r.status === 'stored' && r.seq > seq) seq = r.seq;
        // Named, never shown: a conflict is logged with its identity and job, not its payload.
        if (r.status === 'conflict' && !outcome.redelivered && conflictsLogged++ < MAX_CONFLICTS_LOGGED && job !== undefined) {
          const e = job.events[k]!;
          log.warn({ topic: e.topic, event_id: e.event_id, job: outcome.id, seq: r.seq }, 'conflicting copy dropped: its content differs from the stored event');
        }
      });
      if (job?.reply === true) replies.push({ job: outcome.id, results: outcome.results });
    });
    if (conflictsLogged > MAX_CONFLICTS_LOGGED) {
      log.warn({ conflicts: conflictsLogged, logged: MAX_CONFLICTS_LOGGED }, 'more conflicting copies dropped in this commit than logged one by one');
    }
    if (seq === 0 && replies.length === 0) return;
    publishNotice(redis, queueName, { seq, jobs: replies, committed_at: committedAt }).catch((err: unknown) =>
      log.debug({ err }, 'commit notice not published'),
    );
  };
}
