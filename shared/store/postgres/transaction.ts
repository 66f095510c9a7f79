// One read-committed transaction on a pooled client of its own, for the writes (write.ts) and
// the sweeps (sweep.ts). Read committed whatever the server's default: each statement must see
// what committed before it began (the claim it waited for, the max(seq) after the lock).
import type { Pool, PoolClient } from 'pg';

export async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
    const out = await fn(client);
    await client.query('COMMIT');
    client.release();
    return out;
  } catch (err) {
    // A connection that cannot even roll back is not given back to the pool.
    const broken = await client.query('ROLLBACK').then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    client.release(broken);
    throw err;
  }
}
