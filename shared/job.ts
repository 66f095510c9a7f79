// The poison-job rule, written once: what a job must hold to be committed. A worker checks
// every job on its way out of the queue against the same schema the API used; a job that
// fails can never succeed, so it is parked in the failed set, not retried. The replay tool
// reads the same verdict to decide what may go back in.
import { eventCountOfJobId, type PublishJobData } from './queue.js';
import { validateEvents, type Event } from './schema.js';

type JobInspection = {
  /** Why the job as a whole is unreadable (no events array, a count that does not match). */
  unreadable?: string;
  /** The events that pass the schema, in order. */
  valid: Event[];
  /** One line per invalid event: its index and what is wrong. */
  problems: string[];
};

/** A job's data on its own; a replay gives the job a new id, so the id is not judged here. */
export function inspectJob(data: unknown): JobInspection {
  const none = (unreadable: string): JobInspection => ({ unreadable, valid: [], problems: [] });
  const items = (data as Partial<PublishJobData> | null)?.events;
  if (!Array.isArray(items)) return none('job data has no events array');
  if (items.length === 0) return none('job has no events');
  const all = validateEvents(items);
  if (all.ok) return { valid: all.events, problems: [] };
  // Some are invalid: sort them out one by one (rare, so the cost does not matter).
  const valid: Event[] = [];
  const problems: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const one = validateEvents([items[i]]);
    if (one.ok) valid.push(one.events[0]!);
    else problems.push(`index ${i}: ${one.details.map((d) => `${d.path || 'event'} ${d.message}`).join(', ')}`);
  }
  return { valid, problems };
}

type Decoded = { ok: true; events: Event[] } | { ok: false; reason: string };

/** A job is committed whole or not at all: any problem makes it poison. */
export function decodeJob(id: string | undefined, data: unknown): Decoded {
  if (id === undefined) return { ok: false, reason: 'job has no id' };
  const { unreadable, valid, problems } = inspectJob(data);
  if (unreadable !== undefined) return { ok: false, reason: unreadable };
  // The count in the id is what /stats counted as received while the job waited.
  if (eventCountOfJobId(id) !== valid.length + problems.length) {
    return { ok: false, reason: `job id says ${eventCountOfJobId(id)} events, data holds ${valid.length + problems.length}` };
  }
  if (problems.length > 0) return { ok: false, reason: `${problems.length} invalid event(s); first: ${problems[0]}` };
  return { ok: true, events: valid };
}
