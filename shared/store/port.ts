// The store as a port: what the API and the workers need from it, whichever database holds
// the events. Two adapters implement it: SQLite (`./sqlite/`, embedded, one host) and
// PostgreSQL (`./postgres/`, past one host). Every method is asynchronous, so the same
// callers work with a synchronous embedded driver and a networked one.
//
// What every adapter guarantees (the tests in test/unit/store/ run against both):
// - `(topic, event_id)` is stored once: the first copy committed wins, forever;
// - a job's events, its id and the counts move in one transaction: a job id committed once
//   is recognised when it comes again (a redelivery), and changes nothing then;
// - `seq` is the store's processing order, and a reader paging with `after` never skips an
//   event: an event becomes visible only once every event with a smaller seq is visible.
import type { Event } from '../schema.js';
import type { EventJsonPage, EventJsonQuery } from './event-json.js';

export type JobToCommit = { id: string; events: readonly Event[] };

/** What became of one event of a job. */
export type EventVerdict = 'stored' | 'duplicate' | 'conflict';

/** `seq` is that identity's stored copy: this event's own when `stored`. */
export type EventResult = { status: EventVerdict; seq: number };

export type JobOutcome = {
  id: string;
  stored: number;
  /** Copies dropped, conflicts included. */
  dropped: number;
  /** Of the dropped copies, those whose content differed from the stored copy. */
  conflicts: number;
  /** The job had been committed before (its worker died before acknowledging it). */
  redelivered: boolean;
  /** One per event of the job, in order; the same answer for a redelivered job. */
  results: EventResult[];
};

export type StoredEvent = {
  seq: number;
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: unknown;
  processed_at: string;
};

/** One identity explained: its stored copy and every copy that came after. */
export type EventHistory = {
  event: StoredEvent;
  /** Every copy processed, the stored one included. */
  copies: number;
  conflicts: number;
  first_seen_at: string;
  last_seen_at: string;
};

/** Why a stored event is no longer served: it outlived EVENT_RETENTION, or it was erased. */
export type GoneReason = 'expired' | 'erased';

/** What DELETE /events/{topic}/{event_id} did. */
export type EraseOutcome =
  | { status: 'erased'; seq: number }
  | { status: 'not_found' }
  /** Deleted before this request: expired, or erased by an earlier one. */
  | { status: 'gone'; reason: GoneReason };

/** A committed job's id, with when it was committed (in the store's own unit): a cursor of the jobs table. */
export type JobMark = { id: string; at: number };

export type TopicCounts = { topic: string; events: number; dropped: number; conflicts: number };

export type StoreCounts = {
  /** Events of committed jobs, copies included. */
  received: number;
  uniqueProcessed: number;
  duplicateDropped: number;
  conflicts: number;
  /** Stored events deleted so far because they outlived EVENT_RETENTION, and because they were erased. */
  expired: number;
  erased: number;
  /** Jobs that came again after their commit: the system's own retries, not producers'. */
  redeliveries: number;
  jobs: number;
  topicsCount: number;
  /** The first `topicsLimit` topics with stored events, by name. */
  topics: TopicCounts[];
  /** Which of the asked job ids are committed, read in the same snapshot as the counts. */
  committed: Set<string>;
};

export type Store = {
  readonly kind: 'sqlite' | 'postgres';
  /** Where the events live, for logs: a file path, or a database URL without its password. */
  readonly location: string;
  /** Commits jobs in one transaction; one outcome per job, in order. */
  commitJobs(jobs: readonly JobToCommit[]): Promise<JobOutcome[]>;
  /** Events with seq > after, in seq order. */
  listEvents(q: { topic?: string | undefined; after: number; limit: number }): Promise<StoredEvent[]>;
  /**
   * The same events as listEvents, each already as its JSON text (what the live stream
   * sends), of any of `topics` (all when absent), and how far the page reaches.
   */
  listEventsJson(q: EventJsonQuery): Promise<EventJsonPage>;
  /** The highest seq visible to readers (0 for an empty store). */
  lastSeq(): Promise<number>;
  /** A served event explained; undefined when never stored, expired or erased (see goneReason). */
  getEvent(topic: string, eventId: string): Promise<EventHistory | undefined>;
  /** Why an identity that was stored is no longer served; undefined when served or never stored. */
  goneReason(topic: string, eventId: string): Promise<GoneReason | undefined>;
  /**
   * Deletes a stored event, payload included, keeping its identity: later copies are still
   * dropped as duplicates. Safe while writers commit.
   */
  eraseEvent(topic: string, eventId: string): Promise<EraseOutcome>;
  /**
   * One step of the background deletion: at most `limit` events older than the retention,
   * with their copy log, in one short transaction; how many it deleted. Idempotent and safe
   * when several processes sweep at once. Deletes nothing without a retention.
   */
  expireStep(limit: number): Promise<number>;
  /** Committed jobs after `after` (in commit time, then id order) committed before `before` (ms since the epoch), at most `limit`. */
  jobsCommittedBefore(q: { before: number; after?: JobMark | undefined; limit: number }): Promise<JobMark[]>;
  /** Forgets these committed job ids (a redelivery of one would then count again); how many it removed. */
  forgetJobs(ids: readonly string[]): Promise<number>;
  /** Counts and the committed subset of `jobIds`, from one consistent read. */
  counts(q: { jobIds: readonly string[]; topicsLimit: number }): Promise<StoreCounts>;
  /** Topics by name after `after` (exclusive). */
  listTopics(q: { after?: string | undefined; limit: number }): Promise<TopicCounts[]>;
  /** Which of these job ids the store has already committed. */
  committedJobIds(ids: readonly string[]): Promise<Set<string>>;
  /** Throws if the store cannot be read. */
  ping(): Promise<void>;
  /** Problems found by the database's own consistency check; empty when sound. */
  integrityCheck(): Promise<string[]>;
  /** Bytes the store takes on disk. */
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
};

/** An error whose message is for the operator as it is (bad URL, unreachable database). */
export class StoreConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConfigError';
  }
}
