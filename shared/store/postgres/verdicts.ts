// What becomes of each event of a group commit, decided in memory from what the database
// answered (which identities this commit claimed, the stored copies of the others). Kept
// apart from the SQL so that the rules read in one place: first copy wins, a copy is a
// duplicate or a conflict of the stored copy, a redelivered job gets its first answer again.
import { payloadJson, type Event } from '../../schema.js';
import { sameContent, type Content } from '../content.js';
import type { EventResult, JobOutcome, JobToCommit } from '../port.js';

export const ORD_BITS = 24;

/**
 * A stored copy: its seq, its identity's claim (as text: a bigint) and its content, which
 * is undefined once the event is expired or erased: a copy of it is then a duplicate, with
 * nothing to conflict with and no copy log (no lookup shows it any more).
 */
export type Known = { seq: number; claim: string; content: Content | undefined };

export type TopicTally = { events: number; dropped: number; conflicts: number };

export type Plan = {
  /** Events this commit stores, in seq order. */
  newRows: { ord: number; e: Event; payload: string }[];
  /** One log entry per dropped copy: the claim of the identity it copies. */
  copies: { claim: string; conflict: boolean }[];
  topics: Map<string, TopicTally>;
  totals: { received: number; stored: number; dropped: number; conflicts: number; redeliveries: number; jobs: number };
  /** The outcomes; a seq below 0 stands for newRows[-seq - 1] until the tail gives it its seq. */
  outcomes: JobOutcome[];
};

export const identityKey = (e: Event): string => `${e.topic}\u0000${e.event_id}`;
export const contentOf = (e: Event): Content => ({ source: e.source, timestamp: e.timestamp, payload: payloadJson(e.payload) });
export const claimOf = (commitId: string, ord: number): string => ((BigInt(commitId) << BigInt(ORD_BITS)) | BigInt(ord)).toString();

function copyOf(e: Event, stored: Content | undefined, seq: number): EventResult {
  if (stored === undefined) return { status: 'duplicate', seq };
  return { status: sameContent(contentOf(e), stored) ? 'duplicate' : 'conflict', seq };
}

function storedCopy(known: ReadonlyMap<string, Known>, e: Event): Known {
  const k = known.get(identityKey(e));
  // Unreachable unless the database lost an event whose identity it kept.
  if (k === undefined) throw new Error(`identity ${e.topic}/${e.event_id} is claimed but its stored event is missing`);
  return k;
}

/**
 * A job committed before: event k was stored by it exactly when its identity's claim is
 * the one this job gave its event k (claim_base + k); anything else was a copy of the
 * stored event, and compares with it as it did then, since the stored copy never changes.
 */
export function redeliveredResults(job: JobToCommit, claimBase: string, known: ReadonlyMap<string, Known>): EventResult[] {
  const base = BigInt(claimBase);
  return job.events.map((e, k) => {
    const s = storedCopy(known, e);
    return s.claim === (base + BigInt(k)).toString() ? { status: 'stored', seq: s.seq } : copyOf(e, s.content, s.seq);
  });
}

export type PlanInput = {
  jobs: readonly JobToCommit[];
  commitId: string;
  /** Position of each job's first event in the call. */
  ordBase: readonly number[];
  /** Index of the first job with each id. */
  firstIndex: ReadonlyMap<string, number>;
  /** Job ids this commit recorded (the others were committed before). */
  inserted: ReadonlySet<string>;
  /** Per identity key, the ord of its first copy among the new jobs. */
  firstOrd: ReadonlyMap<string, number>;
  /** Ords whose identity claim this commit won. */
  claimed: ReadonlySet<number>;
  known: ReadonlyMap<string, Known>;
  claimBases: ReadonlyMap<string, string>;
};

/** A plan being made: its input, its output so far, and the first copy of each identity it stores. */
type Planning = {
  readonly p: PlanInput;
  readonly out: Plan;
  /** The first copy of each identity this call stores: its placeholder seq and content. */
  readonly fresh: Map<string, { seq: number; content: Content }>;
};

function tally(out: Plan, topic: string): TopicTally {
  let t = out.topics.get(topic);
  if (t === undefined) out.topics.set(topic, (t = { events: 0, dropped: 0, conflicts: 0 }));
  return t;
}

/**
 * An event that is not the copy this call stores: a copy of the first copy in this call, or
 * of the copy stored before (logged unless that one is expired or erased).
 */
function copyVerdict(s: Planning, e: Event, id: string, claimOrd: number, won: boolean): { result: EventResult; claim: string | undefined } {
  if (won) {
    // A later copy, in this call, of an identity this call stores.
    const f = s.fresh.get(id)!;
    return { result: copyOf(e, f.content, f.seq), claim: claimOf(s.p.commitId, claimOrd) };
  }
  const stored = storedCopy(s.p.known, e);
  return { result: copyOf(e, stored.content, stored.seq), claim: stored.content === undefined ? undefined : stored.claim };
}

/** Event `ord` of a new job: stored, or a copy counted and logged. */
function planEvent(s: Planning, outcome: JobOutcome, e: Event, ord: number): void {
  const id = identityKey(e);
  const claimOrd = s.p.firstOrd.get(id)!;
  const won = s.p.claimed.has(claimOrd);
  if (won && claimOrd === ord) {
    const content = contentOf(e);
    s.out.newRows.push({ ord, e, payload: content.payload });
    const seq = -s.out.newRows.length;
    s.fresh.set(id, { seq, content });
    outcome.results.push({ status: 'stored', seq });
    outcome.stored++;
    tally(s.out, e.topic).events++;
    return;
  }
  const { result, claim } = copyVerdict(s, e, id, claimOrd, won);
  outcome.results.push(result);
  if (claim !== undefined) s.out.copies.push({ claim, conflict: result.status === 'conflict' });
  outcome.dropped++;
  const t = tally(s.out, e.topic);
  t.dropped++;
  if (result.status === 'conflict') {
    outcome.conflicts++;
    t.conflicts++;
  }
}

function planNewJob(s: Planning, job: JobToCommit, j: number): void {
  const totals = s.out.totals;
  const outcome: JobOutcome = { id: job.id, stored: 0, dropped: 0, conflicts: 0, redelivered: false, results: [] };
  totals.received += job.events.length;
  job.events.forEach((e, k) => planEvent(s, outcome, e, s.p.ordBase[j]! + k));
  totals.stored += outcome.stored;
  totals.dropped += outcome.dropped;
  totals.conflicts += outcome.conflicts;
  s.out.outcomes.push(outcome);
}

export function plan(p: PlanInput): Plan {
  const out: Plan = {
    newRows: [],
    copies: [],
    topics: new Map(),
    totals: { received: 0, stored: 0, dropped: 0, conflicts: 0, redeliveries: 0, jobs: p.inserted.size },
    outcomes: [],
  };
  const s: Planning = { p, out, fresh: new Map() };
  p.jobs.forEach((job, j) => {
    const first = p.firstIndex.get(job.id)!;
    if (first === j && p.inserted.has(job.id)) return planNewJob(s, job, j);
    out.totals.redeliveries++;
    const results = first !== j ? out.outcomes[first]!.results : redeliveredResults(job, p.claimBases.get(job.id)!, p.known);
    // Nothing of a redelivery is counted again: it reports no new effect, only its verdicts.
    out.outcomes.push({ id: job.id, stored: 0, dropped: 0, conflicts: 0, redelivered: true, results });
  });
  return out;
}

/** Replaces the placeholder seqs once the tail has numbered the new rows after `base`. */
export function settle(outcomes: readonly JobOutcome[], base: number): JobOutcome[] {
  return outcomes.map((o) => ({
    ...o,
    results: o.results.map((r) => (r.seq < 0 ? { status: r.status, seq: base - r.seq } : { ...r })),
  }));
}
