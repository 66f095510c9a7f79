// A job's data, both ways, and the poison-job rule: what a job must hold to be committed.
// The API writes each event as its fields with the payload's JSON text (version 2, see
// shared/queue.ts); a worker checks those fields with the schema's own rules and the payload
// text for being one JSON object within the limits, which is exactly what the store needs,
// without building each payload and serialising it again (a CPU profile of a worker under a
// batched load: that second validation 10 to 17% of its time, docs/performance.md). Jobs
// queued in the earlier form (whole events) are still read and checked against the schema.
// A job that fails can never succeed, so it is parked in the failed set, not retried. The
// replay tool reads the same verdict to decide what may go back in.
import { eventCountOfJobId, type FieldsJobData, type PublishJobData } from './queue.js';
import { eventOfFields, fieldsOf, validateEvents, type Event } from './schema.js';

/** The data of a job holding these events, as the API adds it. */
export function jobDataOf(events: readonly Event[], reply: boolean): FieldsJobData {
  const fields = new Array<FieldsJobData['events'][number]>(events.length);
  for (let i = 0; i < events.length; i++) fields[i] = fieldsOf(events[i]!);
  return reply ? { v: 2, events: fields, reply } : { v: 2, events: fields };
}

type JobInspection = {
  /** Why the job as a whole is unreadable (no events array, a count that does not match). */
  unreadable?: string;
  /** The events that pass the schema, in order. */
  valid: Event[];
  /** One line per invalid event: its index and what is wrong. */
  problems: string[];
};

const isFieldsForm = (data: unknown): boolean => (data as Partial<FieldsJobData> | null)?.v === 2;

/** Why some fields of a version 2 job are no event at all, before the schema is asked. */
class NotFields {
  constructor(readonly problem: string) {}
}

/** What fields of a version 2 job hold, as an item for the schema to judge. */
function itemOf(fields: unknown): unknown {
  if (!Array.isArray(fields) || fields.length !== 5) return new NotFields('must be the five fields of an event');
  const [topic, event_id, timestamp, source, text] = fields as unknown[];
  if (typeof text !== 'string') return new NotFields('payload must be JSON text');
  try {
    return { topic, event_id, timestamp, source, payload: JSON.parse(text) as unknown };
  } catch (err) {
    return new NotFields(`payload is not JSON: ${(err as Error).message}`);
  }
}

/** A job's data on its own; a replay gives the job a new id, so the id is not judged here. */
export function inspectJob(data: unknown): JobInspection {
  const none = (unreadable: string): JobInspection => ({ unreadable, valid: [], problems: [] });
  const version = (data as { v?: unknown } | null)?.v;
  if (version !== undefined && version !== 2) return none(`job data version ${JSON.stringify(version)} is unknown`);
  const held = (data as Partial<PublishJobData> | null)?.events;
  if (!Array.isArray(held)) return none('job data has no events array');
  if (held.length === 0) return none('job has no events');
  const items: unknown[] = isFieldsForm(data) ? held.map(itemOf) : held;
  const all = items.some((x) => x instanceof NotFields) ? undefined : validateEvents(items);
  if (all?.ok) return { valid: all.events, problems: [] };
  // Some are invalid: sort them out one by one (rare, so the cost does not matter).
  const valid: Event[] = [];
  const problems: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const one = item instanceof NotFields ? undefined : validateEvents([item]);
    if (one?.ok) valid.push(one.events[0]!);
    else if (one === undefined) problems.push(`index ${i}: ${(item as NotFields).problem}`);
    else problems.push(`index ${i}: ${one.details.map((d) => `${d.path || 'event'} ${d.message}`).join(', ')}`);
  }
  return { valid, problems };
}

type Decoded = { ok: true; events: Event[] } | { ok: false; reason: string };

/** The events of a version 2 job, each checked as the store needs it; else the index of the first that is not. */
function eventsOfFields(held: readonly unknown[]): Event[] | number {
  const events = new Array<Event>(held.length);
  for (let i = 0; i < held.length; i++) {
    const e = eventOfFields(held[i]);
    if (e === undefined) return i;
    events[i] = e;
  }
  return events;
}

/** A job is committed whole or not at all: any problem makes it poison. */
export function decodeJob(id: string | undefined, data: unknown): Decoded {
  if (id === undefined) return { ok: false, reason: 'job has no id' };
  const held = (data as Partial<PublishJobData> | null)?.events;
  const fast = isFieldsForm(data) && Array.isArray(held) && eventCountOfJobId(id) === held.length ? eventsOfFields(held) : undefined;
  if (Array.isArray(fast) && fast.length > 0) return { ok: true, events: fast };
  const { unreadable, valid, problems } = inspectJob(data);
  if (unreadable !== undefined) return { ok: false, reason: unreadable };
  // The count in the id is what /stats counted as received while the job waited.
  if (eventCountOfJobId(id) !== valid.length + problems.length) {
    return { ok: false, reason: `job id says ${eventCountOfJobId(id)} events, data holds ${valid.length + problems.length}` };
  }
  if (problems.length > 0) return { ok: false, reason: `${problems.length} invalid event(s); first: ${problems[0]}` };
  // The schema passes what the fields check refused (a payload text over the size limit
  // that would serialise within it): refused all the same, the text is what would be stored.
  if (typeof fast === 'number') return { ok: false, reason: `index ${fast}: the payload text is not what the store can hold` };
  return { ok: true, events: valid };
}
