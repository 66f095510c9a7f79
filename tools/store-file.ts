// What `npm run backup` and `npm run restore` share: the SQLite store's file, a check of a
// copy of it, and writing a file so that it appears whole or not at all.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { STORE_FILE } from '../shared/store/sqlite/schema.js';

export { STORE_FILE };

/** The counters that must balance in any committed state of the store. */
export type Books = { received: number; unique_processed: number; duplicate_dropped: number; jobs: number };

export function readBooks(db: Database.Database): Books {
  const rows = db.prepare('SELECT name, value FROM counters').all() as { name: string; value: number }[];
  const get = (name: string) => rows.find((r) => r.name === name)?.value ?? 0;
  return {
    received: get('received'),
    unique_processed: get('unique_processed'),
    duplicate_dropped: get('duplicate_dropped'),
    jobs: get('jobs'),
  };
}

export type CopyCheck = { books: Books; format: number; bytes: number };

/**
 * Checks a store file that no process uses (a fresh copy: it is opened for writing, so that a
 * copy in WAL mode needs no -shm beside it): SQLite's integrity check (every page, every
 * index against its table) and the books (every event of every committed job is either
 * stored or a dropped copy). Throws, saying what is wrong.
 */
export function checkStoreFile(file: string): CopyCheck {
  const db = new Database(file, { fileMustExist: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all() as string[];
    for (const t of ['events', 'counters', 'jobs']) {
      if (!tables.includes(t)) throw new Error(`${file} is not an event store: it has no ${t} table`);
    }
    const problems = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).filter((r) => r !== 'ok');
    if (problems.length > 0) throw new Error(`integrity check of ${file} failed: ${problems.slice(0, 5).join('; ')}`);
    const books = readBooks(db);
    if (books.received !== books.unique_processed + books.duplicate_dropped) {
      throw new Error(
        `the books of ${file} do not balance: received ${books.received} != unique_processed ${books.unique_processed} + duplicate_dropped ${books.duplicate_dropped}`,
      );
    }
    return { books, format: db.pragma('user_version', { simple: true }) as number, bytes: fs.statSync(file).size };
  } finally {
    db.close();
  }
}

/** fsync of a file, then of its directory once it has been renamed there. */
export function syncFile(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Removes a half-written file and what SQLite may have left beside it. */
export function removeWithJournals(file: string): void {
  for (const suffix of ['', '-journal', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
}

/** A temporary name beside `file`, in the same directory (so the final rename is atomic). */
export function tempNameFor(file: string, what: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${what}-${process.pid}`);
}

export function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
