// commitJobs on PostgreSQL: several workers commit at once, and a reader paging with
// `after` must never skip an event.
//
// Why a cursor cannot skip. If seqs were taken from a sequence at the start of each
// transaction, transaction A could take 1..10, B 11..20, and B commit first: a reader
// would see 11..20, move its cursor to 20, and never see 1..10. So a commit is split:
// 1. the heavy, parallel part, under no global lock: record the job ids; claim each new
//    identity with INSERT ... ON CONFLICT DO NOTHING into `identities` (a claim on a key
//    another uncommitted transaction holds waits for that one, so each identity has one
//    winner); read the stored copies the copies are compared with; log the copies; add to
//    this transaction's counter shards;
// 2. the short tail, under pg_advisory_xact_lock(SEQ_LOCK): read max(seq), insert every
//    new event row with seqs after it in one statement, commit. The lock is released only
//    after the commit is visible (PostgreSQL makes a transaction visible before it
//    releases its locks), so the next holder reads a max(seq) that includes it: seq order
//    is commit order, and every reader's snapshot holds a prefix of the seqs.
// A commit that stores nothing new (only copies, or only redeliveries) skips the tail.
//
// How a claim finds its seq without updating the identity under the lock: the claim is a
// number fixed before the lock, `commit_id << 24 | ord`, ord being the event's position in
// this commitJobs call; the event row carries the same claim (unique index, nearly
// append-only since commit ids grow), so identity -> event is a join, never an update.
//
// Redelivery at the cost of one row per job: a job row keeps `claim_base`, the claim its
// first event had. Event k of the job was 'stored' by it exactly when its identity's claim
// is claim_base + k; otherwise it was a copy of the stored event and is compared with it
// again, which gives the same verdict, since the stored copy never changes.
//
// No deadlock: every transaction takes its row locks in one global order: job ids, then
// identities (both sorted), then its counter shard, then its topic rows (sorted), then
// the seq lock; the tail only inserts rows no other transaction can hold.
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import type { Event } from '../../schema.js';
import type { JobOutcome, JobToCommit } from '../port.js';
import { MAX_SEQ_SQL } from './schema.js';
import { inTransaction } from './transaction.js';
import { ORD_BITS, identityKey, plan, settle, type Known, type Plan } from './verdicts.js';

/** Transaction-scoped lock that orders the tails of commits (an arbitrary constant). */
export const SEQ_LOCK = '7165440215342907002';
export const MAX_EVENTS_PER_COMMIT = 2 ** ORD_BITS;
/** Counter rows per counter: concurrent commits mostly land on different rows. */
export const SHARDS = 16;

/** A stored copy, or (no content, `expired` or erased) what is kept of it once deleted or expired. */
type StoredRow = { k: number; claim: string; seq: string; ts: string | null; source: Buffer | null; payload: string | null; outlived: boolean };

/**
 * Every statement of a commit runs prepared, under its name, once per connection: from then
 * on the server only binds and runs it. Parsing and planning a commit's statements again at
 * every commit was a large part of the server's work when commits were small (one event per
 * request, where its CPU per event was five times that of batches); with the lookup by key
 * below, the server's CPU per event for such commits halved (docs/performance.md).
 */
function prepared<R extends QueryResultRow = QueryResultRow>(client: PoolClient, name: string, text: string, values: unknown[]): Promise<QueryResult<R>> {
  return client.query<R>({ name: `commit-${name}`, text, values });
}

/** `cutoff`: events processed before it are expired (copies of them are plain duplicates). */
export async function commitJobs(pool: Pool, jobs: readonly JobToCommit[], cutoff: Date = new Date(0)): Promise<JobOutcome[]> {
  if (jobs.length === 0) return [];
  return inTransaction(pool, (client) => commitInTransaction(client, jobs, cutoff));
}

async function commitInTransaction(client: PoolClient, jobs: readonly JobToCommit[], cutoff: Date): Promise<JobOutcome[]> {
  const { ordBase, firstIndex } = positions(jobs);
  const { commitId, inserted, before, claimBases } = await recordJobs(client, ordBase, firstIndex);
  const { firstOrd, firstCopy } = firstCopies(jobs, ordBase, firstIndex, inserted);
  const claimed = await claim(client, commitId, firstOrd, firstCopy);

  // The stored copies to compare with: identities claimed before this commit, and every
  // identity of a job committed before (its verdicts are given again).
  const toRead = new Map<string, Event>();
  for (const [id, ord] of firstOrd) if (!claimed.has(ord)) toRead.set(id, firstCopy.get(id)!);
  for (const id of before) for (const e of jobs[firstIndex.get(id)!]!.events) toRead.set(identityKey(e), e);
  const known = await readStored(client, [...toRead.values()], cutoff);

  const p = plan({ jobs, commitId, ordBase, firstIndex, inserted, firstOrd, claimed, known, claimBases });
  await addCounts(client, p);
  if (p.newRows.length === 0) return settle(p.outcomes, 0);
  return settle(p.outcomes, await appendEvents(client, commitId, p.newRows));
}

/** Each job's first ord (its events' positions in this call, redelivered jobs' included), and the first job of each id. */
function positions(jobs: readonly JobToCommit[]): { ordBase: number[]; firstIndex: Map<string, number> } {
  const ordBase: number[] = [];
  let total = 0;
  for (const job of jobs) {
    ordBase.push(total);
    total += job.events.length;
  }
  if (total >= MAX_EVENTS_PER_COMMIT) throw new RangeError(`one commit holds at most ${MAX_EVENTS_PER_COMMIT - 1} events`);
  // A job id given twice in one call: the second is a redelivery of the first.
  const firstIndex = new Map<string, number>();
  jobs.forEach((job, j) => {
    if (!firstIndex.has(job.id)) firstIndex.set(job.id, j);
  });
  return { ordBase, firstIndex };
}

/**
 * Records the job ids under a new commit id, in one global order (see the top): which were
 * new (`inserted`), which were committed before (`before`), and those ones' claim bases.
 */
async function recordJobs(client: PoolClient, ordBase: readonly number[], firstIndex: ReadonlyMap<string, number>) {
  // sort() without a comparator orders strings by UTF-16 code units: one total order that
  // every writer shares, which is all the lock order needs.
  const ids = [...firstIndex.keys()].sort();
  const recorded = await prepared<{ commit_id: string; inserted: string[] }>(
    client,
    'record-jobs',
    `WITH c AS (SELECT nextval('commit_ids') AS id),
     ins AS (
       INSERT INTO jobs (id, claim_base, committed_at)
       SELECT x.id, (c.id << ${ORD_BITS}) | x.ord, now() FROM c, unnest($1::text[], $2::int[]) AS x(id, ord)
       ON CONFLICT (id) DO NOTHING RETURNING id)
     SELECT (SELECT id FROM c)::text AS commit_id, ARRAY(SELECT id FROM ins) AS inserted`,
    [ids, ids.map((id) => ordBase[firstIndex.get(id)!]!)],
  );
  const commitId = recorded.rows[0]!.commit_id;
  const inserted = new Set(recorded.rows[0]!.inserted);
  const before = ids.filter((id) => !inserted.has(id));
  const claimBases = new Map<string, string>();
  if (before.length > 0) {
    const rows = await prepared<{ id: string; claim_base: string }>(
      client,
      'claim-bases',
      'SELECT id, claim_base::text AS claim_base FROM jobs WHERE id = ANY($1::text[])',
      [before],
    );
    for (const r of rows.rows) claimBases.set(r.id, r.claim_base);
  }
  return { commitId, inserted, before, claimBases };
}

/** The identities of the new jobs, each with the ord of its first copy and that copy. */
function firstCopies(jobs: readonly JobToCommit[], ordBase: readonly number[], firstIndex: ReadonlyMap<string, number>, inserted: ReadonlySet<string>) {
  const firstOrd = new Map<string, number>();
  const firstCopy = new Map<string, Event>();
  jobs.forEach((job, j) => {
    if (firstIndex.get(job.id) !== j || !inserted.has(job.id)) return;
    job.events.forEach((e, k) => {
      const id = identityKey(e);
      if (!firstOrd.has(id)) {
        firstOrd.set(id, ordBase[j]! + k);
        firstCopy.set(id, e);
      }
    });
  });
  return { firstOrd, firstCopy };
}

/** Claims the identities first seen here, in one global order (see the top); returns the ords won. */
async function claim(
  client: PoolClient,
  commitId: string,
  firstOrd: ReadonlyMap<string, number>,
  firstCopy: ReadonlyMap<string, Event>,
): Promise<Set<number>> {
  const won = new Set<number>();
  if (firstOrd.size === 0) return won;
  const keys = [...firstOrd.keys()].sort();
  // Rows as one JSON text: far cheaper to make than node-postgres' array literals.
  const json = JSON.stringify(keys.map((id) => ({ t: firstCopy.get(id)!.topic, i: firstCopy.get(id)!.event_id, o: firstOrd.get(id)! })));
  const { rows } = await prepared<{ ord: number }>(
    client,
    'claim',
    `INSERT INTO identities (topic, event_id, claim)
     SELECT x.t, x.i, ($1::bigint << ${ORD_BITS}) | x.o FROM json_to_recordset($2::json) AS x(t text, i text, o int)
     ON CONFLICT (topic, event_id) DO NOTHING
     RETURNING (claim & ${MAX_EVENTS_PER_COMMIT - 1})::int AS ord`,
    [commitId, json],
  );
  for (const r of rows) won.add(r.ord);
  return won;
}

/**
 * The stored copies of the identities in $1 (JSON rows `{t, i, k}`), expired before $2 or not.
 *
 * Each table is probed by its key, one row of $1 at a time: the `LIMIT 1` subqueries cannot
 * be flattened into joins. As plain joins, the planner (which takes any set-returning
 * function for 100 rows) hashed the rows of $1 and scanned all of `identities` at every
 * commit while the table was young and not yet analyzed: a store's first minutes, under
 * load, read every identity at every commit. A probe per row costs the same at any size.
 * Exported for the test that reads its plan.
 */
export const STORED_COPIES_SQL = `SELECT x.k, i.claim::text AS claim, coalesce(e.seq, g.seq) AS seq, e.ts, e.source, e.payload,
         (e.seq IS NULL OR e.processed_at < $2) AS outlived
    FROM json_to_recordset($1::json) AS x(t text, i text, k int)
   CROSS JOIN LATERAL (SELECT claim FROM identities WHERE topic = x.t AND event_id = x.i LIMIT 1) i
    LEFT JOIN LATERAL (SELECT seq, ts, source, payload, processed_at FROM events WHERE claim = i.claim LIMIT 1) e ON true
    LEFT JOIN LATERAL (SELECT seq FROM gone WHERE claim = i.claim LIMIT 1) g ON true
   WHERE e.seq IS NOT NULL OR g.seq IS NOT NULL`;

/** The stored copies of these identities, by key, with their claims. */
async function readStored(client: PoolClient, events: readonly Event[], cutoff: Date): Promise<Map<string, Known>> {
  const found = new Map<string, Known>();
  if (events.length === 0) return found;
  // An identity whose event is deleted keeps its seq in `gone`; one expired but not yet
  // deleted is as good as gone.
  const { rows } = await prepared<StoredRow>(client, 'stored-copies', STORED_COPIES_SQL, [
    JSON.stringify(events.map((e, k) => ({ t: e.topic, i: e.event_id, k }))),
    cutoff,
  ]);
  for (const r of rows) {
    const content =
      r.outlived || r.source === null || r.ts === null || r.payload === null
        ? undefined
        : { source: r.source.toString('utf8'), timestamp: r.ts, payload: r.payload };
    found.set(identityKey(events[r.k]!), { seq: Number(r.seq), claim: r.claim, content });
  }
  return found;
}

/** Counts and the copy log, in one shard picked per transaction. */
async function addCounts(client: PoolClient, p: Plan): Promise<void> {
  const shard = Math.floor(Math.random() * SHARDS);
  const c = p.totals;
  // The copy log has no unique key, so inserting into it waits for no one: it can share
  // the statement that takes the counter row's lock.
  await prepared(
    client,
    'add-counts',
    `WITH log AS (
       INSERT INTO copies (claim, conflict, seen_at)
       SELECT x.claim, x.conflict, statement_timestamp() FROM unnest($8::bigint[], $9::boolean[]) AS x(claim, conflict))
     INSERT INTO counters AS c (shard, received, unique_processed, duplicate_dropped, conflicts, redeliveries, jobs)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (shard) DO UPDATE SET
       received = c.received + excluded.received,
       unique_processed = c.unique_processed + excluded.unique_processed,
       duplicate_dropped = c.duplicate_dropped + excluded.duplicate_dropped,
       conflicts = c.conflicts + excluded.conflicts,
       redeliveries = c.redeliveries + excluded.redeliveries,
       jobs = c.jobs + excluded.jobs`,
    [
      shard,
      c.received,
      c.stored,
      c.dropped,
      c.conflicts,
      c.redeliveries,
      c.jobs,
      p.copies.map((x) => x.claim),
      p.copies.map((x) => x.conflict),
    ],
  );
  if (p.topics.size === 0) return;
  const names = [...p.topics.keys()].sort();
  const t = (n: string) => p.topics.get(n)!;
  await prepared(
    client,
    'add-topic-counts',
    `INSERT INTO topic_counts AS t (topic, shard, events, dropped, conflicts)
     SELECT x.topic, $1, x.events, x.dropped, x.conflicts
       FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS x(topic, events, dropped, conflicts)
     ON CONFLICT (topic, shard) DO UPDATE SET
       events = t.events + excluded.events,
       dropped = t.dropped + excluded.dropped,
       conflicts = t.conflicts + excluded.conflicts`,
    [shard, names, names.map((n) => t(n).events), names.map((n) => t(n).dropped), names.map((n) => t(n).conflicts)],
  );
}

/**
 * The tail: under the seq lock, the new rows take the next seqs in one statement. Returns
 * the seq before them. The rows go as one JSON text, made before the lock is taken: the
 * serialisation is client work that would otherwise hold every other writer's tail back.
 * (The source goes as hex: JSON text cannot carry a NUL into a text value, a source can.)
 */
async function appendEvents(client: PoolClient, commitId: string, rows: Plan['newRows']): Promise<number> {
  const json = JSON.stringify(
    rows.map((r, i) => ({
      n: i + 1,
      o: r.ord,
      t: r.e.topic,
      i: r.e.event_id,
      s: r.e.timestamp,
      c: Buffer.from(r.e.source, 'utf8').toString('hex'),
      p: r.payload,
    })),
  );
  await prepared(client, 'seq-lock', `SELECT pg_advisory_xact_lock(${SEQ_LOCK})`, []);
  // A new statement, so a new snapshot: it sees the previous holder's commit.
  const res = await prepared<{ base: string }>(
    client,
    'append-events',
    `WITH m AS (SELECT ${MAX_SEQ_SQL} AS base),
     ins AS (
       INSERT INTO events (seq, claim, topic, event_id, ts, source, payload, processed_at)
       SELECT m.base + x.n, ($1::bigint << ${ORD_BITS}) | x.o, x.t, x.i, x.s, decode(x.c, 'hex'), x.p, statement_timestamp()
         FROM m, json_to_recordset($2::json) AS x(n int, o int, t text, i text, s text, c text, p text)
        ORDER BY x.n)
     SELECT base::text FROM m`,
    [commitId, json],
  );
  return Number(res.rows[0]!.base);
}
