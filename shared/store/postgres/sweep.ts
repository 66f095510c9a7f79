// Deleting events from the PostgreSQL store, keeping their identities: the background expiry
// of events older than the retention, erasure of one event, and the pruning of job ids no
// redelivery can still need. Each step is one short transaction of its own.
//
// Deleting an event moves its claim and seq into `gone` and deletes its row and its copy
// log; its row in `identities` stays, so a later copy still loses the claim and is told
// apart from a new event exactly (write.ts reads `gone` for its seq).
import type { Pool, PoolClient } from 'pg';
import type { EraseOutcome, JobMark } from '../port.js';
import { inTransaction } from './transaction.js';
import { SHARDS } from './write.js';

/** Serialises sweepers of several workers (an arbitrary constant): one deletes, the others skip the step. */
const SWEEP_LOCK = '7165440215342907003';

/**
 * Keeps the identities of these deleted events, deletes their copy log, and adds them to the
 * counter `column`, all in the caller's transaction.
 */
const FORGET_CONTENT = (deleted: string) => `
  g AS (INSERT INTO gone (claim, seq, erased) SELECT claim, seq, erased FROM ${deleted} ON CONFLICT (claim) DO NOTHING),
  c AS (DELETE FROM copies WHERE claim IN (SELECT claim FROM ${deleted}))`;

async function addToCounter(client: PoolClient, column: 'expired' | 'erased', n: number): Promise<void> {
  if (n === 0) return;
  await client.query(
    `INSERT INTO counters AS c (shard, ${column}) VALUES ($1, $2)
     ON CONFLICT (shard) DO UPDATE SET ${column} = c.${column} + excluded.${column}`,
    [Math.floor(Math.random() * SHARDS), n],
  );
}

/**
 * At most `limit` expired events, from the head of the seq order (processed_at grows with
 * seq, so a step reads a bounded page whatever the table holds).
 */
export function expireStep(pool: Pool, limit: number, cutoff: Date): Promise<number> {
  return inTransaction(pool, async (client) => {
    const locked = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(${SWEEP_LOCK}) AS ok`);
    if (locked.rows[0]?.ok !== true) return 0;
    const { rows } = await client.query<{ n: number }>(
      `WITH h AS (SELECT seq FROM (SELECT seq, processed_at FROM events ORDER BY seq LIMIT $1) x WHERE x.processed_at < $2),
       d AS (DELETE FROM events e USING h WHERE e.seq = h.seq RETURNING e.claim, e.seq, false AS erased),
       ${FORGET_CONTENT('d')}
       SELECT count(*)::int AS n FROM d`,
      [limit, cutoff],
    );
    const n = rows[0]?.n ?? 0;
    await addToCounter(client, 'expired', n);
    return n;
  });
}

export function eraseEvent(pool: Pool, topic: string, eventId: string, cutoff: Date): Promise<EraseOutcome> {
  return inTransaction(pool, async (client) => {
    const found = await client.query<{ claim: string; expired: boolean | null; erased: boolean | null }>(
      `SELECT i.claim::text AS claim, e.processed_at < $3 AS expired, g.erased
         FROM identities i
         LEFT JOIN events e ON e.claim = i.claim
         LEFT JOIN gone g ON g.claim = i.claim
        WHERE i.topic = $1 AND i.event_id = $2`,
      [topic, eventId, cutoff],
    );
    const r = found.rows[0];
    if (r === undefined) return { status: 'not_found' };
    if (r.erased !== null) return { status: 'gone', reason: r.erased ? 'erased' : 'expired' };
    // Already expired, not yet swept: gone for every reader already; deleted now, as expired.
    const erased = r.expired !== true;
    // A sweeper deleting the same row meanwhile: this DELETE waits for it, then finds nothing.
    const { rows } = await client.query<{ seq: string }>(
      `WITH d AS (DELETE FROM events WHERE claim = $1 RETURNING claim, seq, $2::boolean AS erased),
       ${FORGET_CONTENT('d')}
       SELECT seq::text FROM d`,
      [r.claim, erased],
    );
    const deleted = rows[0];
    if (deleted === undefined) {
      const again = await client.query<{ erased: boolean }>('SELECT erased FROM gone WHERE claim = $1', [r.claim]);
      return { status: 'gone', reason: again.rows[0]?.erased === true ? 'erased' : 'expired' };
    }
    await addToCounter(client, erased ? 'erased' : 'expired', 1);
    return erased ? { status: 'erased', seq: Number(deleted.seq) } : { status: 'gone', reason: 'expired' };
  });
}

export async function jobsCommittedBefore(
  pool: Pool,
  { before, after, limit }: { before: number; after?: JobMark | undefined; limit: number },
): Promise<JobMark[]> {
  // The cursor in whole microseconds (PostgreSQL's own resolution), so it is exact: the jobs
  // of one commit share their committed_at.
  const { rows } = await pool.query<{ id: string; at: string }>(
    `SELECT id, ((extract(epoch FROM committed_at) * 1000000)::bigint)::text AS at FROM jobs
      WHERE committed_at < $1 AND (committed_at, id) > (timestamptz 'epoch' + $2::bigint * interval '1 microsecond', $3)
      ORDER BY committed_at, id LIMIT $4`,
    [new Date(before), after?.at ?? -1, after?.id ?? '', limit],
  );
  return rows.map((r) => ({ id: r.id, at: Number(r.at) }));
}

export async function forgetJobs(pool: Pool, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const res = await pool.query('DELETE FROM jobs WHERE id = ANY($1::text[])', [ids]);
  return res.rowCount ?? 0;
}
