// The owned PostgreSQL lives in tools/harness (the chaos run uses it too); tests import it
// from here, with the guard that skips a suite where no server can be made.
import { postgresBinDir } from '../../tools/harness/owned-postgres.js';

export { postgresBinDir, startOwnedPostgres, type OwnedPostgres } from '../../tools/harness/owned-postgres.js';

/** For a suite's `before`: skips it (CI fails instead) where no server can be made here. */
export function requireOwnedPostgres(ctx: Mocha.Context): void {
  const why =
    postgresBinDir() === undefined
      ? 'no initdb under /usr/lib/postgresql'
      : process.getuid?.() !== 0
        ? 'making a server needs root (initdb runs as the postgres user)'
        : undefined;
  if (why === undefined) return;
  if (process.env.CI) throw new Error(`cannot make a PostgreSQL server: ${why}`);
  console.log(`    (skipped: ${why})`);
  ctx.skip();
}
