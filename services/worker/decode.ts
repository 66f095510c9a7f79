// A job's data checked again on the way out of the queue, against the same schema the API
// used. Anything that fails here is a poison message: it can never succeed, so it is not
// retried, only parked in the failed set.
import { eventCountOfJobId, type PublishJobData } from '../../shared/queue.js';
import { validateEvents, type Event } from '../../shared/schema.js';

export type Decoded = { ok: true; events: Event[] } | { ok: false; reason: string };

export function decodeJob(id: string | undefined, data: unknown): Decoded {
  if (id === undefined) return { ok: false, reason: 'job has no id' };
  const events = (data as Partial<PublishJobData> | null)?.events;
  if (!Array.isArray(events)) return { ok: false, reason: 'job data has no events array' };
  if (events.length === 0) return { ok: false, reason: 'job has no events' };
  // The count in the id is what /stats counted as received while the job waited.
  if (eventCountOfJobId(id) !== events.length) {
    return { ok: false, reason: `job id says ${eventCountOfJobId(id)} events, data holds ${events.length}` };
  }
  const result = validateEvents(events);
  if (!result.ok) {
    const first = result.details[0]!;
    return {
      ok: false,
      reason: `${result.details.length} invalid event(s); first: index ${first.index}, ${first.path || 'event'} ${first.message}`,
    };
  }
  return { ok: true, events: result.events };
}
