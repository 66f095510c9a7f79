// Mocha's side of the test PostgreSQL (tools/harness/postgres.ts makes the databases).
import { ADMIN_URL, postgresAnswers } from '../../tools/harness/postgres.js';

/**
 * For a suite's `before`: skips the suite, saying why, when no PostgreSQL answers on a
 * developer's machine; in CI a missing database is a failure, not a skip.
 */
export async function requirePostgres(ctx: Mocha.Context): Promise<void> {
  if (await postgresAnswers()) return;
  const where = ADMIN_URL.replace(/:[^:@/]*@/, '@');
  if (process.env.CI) throw new Error(`no PostgreSQL answers at ${where} (CI must have one: see .ci/run)`);
  console.log(`    (skipped: no PostgreSQL answers at ${where}; set TEST_POSTGRES_URL or start one)`);
  ctx.skip();
}
