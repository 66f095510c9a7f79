// `npm run restore -- <file> [--force]`: puts a backup made by `npm run backup` in place as
// the SQLite store (DATA_DIR/events.db) of a stopped deployment (docs/backup.md).
//
// Refused while any process has the store open: every SQLite connection to a WAL database
// holds a shared lock on its file for as long as it is open, so an exclusive lock taken
// without waiting tells that none does (on this host; a process on another host of a
// shared volume is not seen, and the service must be stopped first in any case).
//
// The backup is copied under a temporary name into DATA_DIR, checked there, synced and
// renamed into place. A store already there is replaced only with --force, and kept beside
// it as events.db.replaced-<time> (its WAL folded into it first). The old store's -wal and
// -shm never survive next to the restored file: SQLite would replay the old WAL's pages
// into the new file.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { ConfigError, loadConfig } from '../shared/config.js';
import { errorMessage } from '../shared/errors.js';
import { STORE_FILE, checkStoreFile, removeWithJournals, syncDir, syncFile, tempNameFor } from './store-file.js';

const USAGE = 'usage: npm run restore -- <backup file> [--force]';

const PG_RESTORE_HINT =
  'DATABASE_URL is set: the store is PostgreSQL, which this command does not restore. Restore a pg_dump with pg_restore, e.g.\n' +
  '  pg_restore --clean --if-exists --no-owner --dbname="$DATABASE_URL" events.dump\n' +
  'with the API and workers stopped (see docs/backup.md).';

class UsageError extends Error {}

/**
 * Whether a process holds the store open. If none does, folds its WAL into the file (the
 * last connection to close does that), so that the file alone is the whole store.
 */
function storeInUse(file: string): boolean {
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: true, timeout: 0 });
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return true;
    throw err;
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    return false;
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return true;
    throw err;
  } finally {
    db.close();
  }
}

function main(): number {
  const { values: args, positionals } = parseArgs({
    options: { force: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const config = loadConfig(process.env);
  if (config.databaseUrl !== undefined) {
    console.error(`restore: ${PG_RESTORE_HINT}`);
    return 2;
  }
  const backup = path.resolve(positionals[0]!);
  if (!fs.existsSync(backup)) throw new Error(`no backup at ${backup}`);
  const dataDir = path.resolve(config.dataDir);
  const target = path.join(dataDir, STORE_FILE);
  if (backup === target) throw new Error('the backup is the store itself');
  fs.mkdirSync(dataDir, { recursive: true });

  const exists = fs.existsSync(target);
  if (exists && storeInUse(target)) {
    throw new Error(`the store ${target} is in use by a running process (the API or a worker): stop the service, then restore`);
  }
  if (exists && !args.force) throw new Error(`a store already exists at ${target}: pass --force to replace it (it is kept beside it)`);

  const temp = tempNameFor(target, 'restoring');
  removeWithJournals(temp);
  try {
    fs.copyFileSync(backup, temp);
    // Root restoring for a service that runs as another user (the images run as `node`): the
    // file must be that user's, as SQLite itself does for the -wal and -shm it creates as root.
    if (process.getuid?.() === 0) {
      const owner = fs.statSync(exists ? target : dataDir);
      fs.chownSync(temp, owner.uid, owner.gid);
    }
    console.error('restore: checking the backup (integrity check)');
    const check = checkStoreFile(temp);
    syncFile(temp);
    // Checked again just before the swap: a process may have started meanwhile.
    if (exists && storeInUse(target)) throw new Error(`the store ${target} was opened by a process meanwhile: stop the service, then restore`);
    let keptAs: string | undefined;
    if (exists) {
      keptAs = `${target}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      fs.renameSync(target, keptAs);
    }
    for (const suffix of ['-wal', '-shm', '-journal']) fs.rmSync(target + suffix, { force: true });
    fs.renameSync(temp, target);
    syncDir(dataDir);
    console.error(`restore: done; start the service with DATA_DIR=${config.dataDir}`);
    console.log(
      JSON.stringify({
        restored: target,
        from: backup,
        bytes: check.bytes,
        replaced_store_kept_as: keptAs ?? null,
        received: check.books.received,
        unique_processed: check.books.unique_processed,
        duplicate_dropped: check.books.duplicate_dropped,
      }),
    );
    return 0;
  } catch (err) {
    removeWithJournals(temp);
    throw err;
  }
}

try {
  process.exitCode = main();
} catch (err) {
  console.error(`restore: ${err instanceof ConfigError || err instanceof UsageError ? err.message : errorMessage(err)}`);
  process.exitCode = 1;
}
