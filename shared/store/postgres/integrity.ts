// The PostgreSQL store's own integrity check: how its tables agree with one another.
import type pg from 'pg';
import { TABLES } from './schema.js';

/**
 * PostgreSQL checks its pages itself (and amcheck, where installed, checks the indexes);
 * what only this store knows is how its tables agree: every identity has its event, and
 * the counters match the rows. Reads every row: for tools and tests, not for a hot path.
 */
export async function integrityCheck(pool: pg.Pool): Promise<string[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const problems: string[] = [];
    const { rows } = await client.query<Record<string, string>>(
      `SELECT
         (SELECT count(*) FROM events)::text AS events,
         (SELECT count(*) FROM identities)::text AS identities,
         (SELECT count(*) FROM gone)::text AS gone,
         (SELECT count(*) FROM identities i WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.claim = i.claim)
            AND NOT EXISTS (SELECT 1 FROM gone g WHERE g.claim = i.claim))::text AS orphans,
         (SELECT coalesce(sum(expired + erased), 0) FROM counters)::text AS removed,
         (SELECT coalesce(sum(unique_processed), 0) FROM counters)::text AS unique_processed,
         (SELECT coalesce(sum(received - unique_processed - duplicate_dropped), 0) FROM counters)::text AS unbalanced,
         (SELECT coalesce(sum(duplicate_dropped), 0) FROM counters)::text AS dropped,
         (SELECT count(*) FROM copies)::text AS copies,
         (SELECT coalesce(sum(events), 0) FROM topic_counts)::text AS topic_events`,
    );
    const r = rows[0]!;
    // Deleted events (expired, erased) keep their identity in `gone`, and take their copy log with them.
    const kept = String(Number(r.events) + Number(r.gone));
    if (kept !== r.identities) problems.push(`${r.identities} identities but ${r.events} events and ${r.gone} deleted`);
    if (r.orphans !== '0') problems.push(`${r.orphans} identities without their event`);
    if (r.unique_processed !== kept) problems.push(`unique_processed is ${r.unique_processed}, events hold ${r.events} and ${r.gone} deleted`);
    if (r.removed !== r.gone) problems.push(`expired + erased is ${r.removed}, ${r.gone} events were deleted`);
    if (r.unbalanced !== '0') problems.push(`received differs from unique_processed + duplicate_dropped by ${r.unbalanced}`);
    if (r.gone === '0' && r.dropped !== r.copies) problems.push(`duplicate_dropped is ${r.dropped}, the copy log holds ${r.copies}`);
    if (r.topic_events !== kept) problems.push(`per-topic counts sum to ${r.topic_events}, events hold ${kept}`);
    const amcheck = await client.query("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'");
    if (amcheck.rowCount !== 0) {
      const indexes = await client.query<{ name: string }>(
        `SELECT i.indexrelid::regclass::text AS name FROM pg_index i
          WHERE i.indrelid = ANY(SELECT to_regclass(t) FROM unnest($1::text[]) AS t)`,
        [TABLES],
      );
      for (const { name } of indexes.rows) {
        try {
          await client.query('SELECT bt_index_check($1::regclass)', [name]);
        } catch (err) {
          problems.push(`index ${name}: ${err instanceof Error ? err.message : String(err)}`);
          break; // the transaction is aborted now
        }
      }
    }
    return problems;
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}
