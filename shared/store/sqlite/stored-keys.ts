// A writer's filter of stored keys (key-filter.ts): built once in the background, a page per
// turn of the event loop, then kept up to date by each commit.
import type Database from 'better-sqlite3';
import { dedupKey } from '../identity.js';
import { unpackId } from './compact-id.js';
import type { Counters } from './counters.js';
import { filterBytesFor, KeyFilter } from './key-filter.js';
import { MAX_SEQ_SQL } from './schema.js';

/**
 * Keys per read when a writer builds its filter of stored keys, one read per turn of the event
 * loop: small, so that the jobs the worker takes meanwhile wait for one read at most (about
 * 5 ms; 50,000 keys per read made its first job wait over a second longer).
 */
const KEY_PAGE = 5_000;

/** Stored keys read so far into the filter, of about `total`. */
export type FilterProgress = (read: number, total: number) => void;

/**
 * How a build of the filter ended: `built` (the writer uses it from its next commit, `keys`
 * in `bytes`), `over-bound` (it would need more than the bound: the writer keeps none and
 * looks every key up), `closed` (the store closed meanwhile).
 */
export type FilterBuild = { status: 'built'; keys: number; bytes: number } | { status: 'over-bound'; keys: number; maxBytes: number } | { status: 'closed' };

/**
 * Events other writers committed that a commit still reads itself, in its transaction, to
 * bring its filter up to date (about 50 ms of the write lock). A writer further behind (a
 * standby that takes over, writer-lease.ts) reads them in the background instead, a window
 * per turn of the event loop, and commits look their keys up meanwhile.
 */
const CATCH_UP_IN_COMMIT = 100_000;

export type StoredKeysOptions = {
  /** Keys per read while the filter is built (tests make it small). */
  keyPage?: number;
  /** Seqs a commit catches up on itself; more are read in the background (tests make it small). */
  catchUpInCommit?: number;
  /** The most the filter may hold; past it the writer keeps no filter. */
  filterMaxBytes?: number;
};

const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Every key of every event up to `through` is in `filter`: the keys of both tiers read by the
 * build, the events stored since, read by its catch-up, then each commit's own, and the
 * events other processes committed since this one's last commit, read at the start of the
 * next. Keys it holds that were never committed (a commit rolled back) only cost a lookup.
 * No filter (not built yet, or over its bound): every key is looked up, exact as well.
 */
export class StoredKeys {
  private filter: KeyFilter | undefined;
  private through = 0;
  private building: Promise<FilterBuild> | undefined;
  private lastBuild: FilterBuild | undefined;
  /** The filter being brought up to date in the background: commits do without it meanwhile. */
  private catchingUp: Promise<void> | undefined;
  private readonly catchUpInCommit: number;
  private readonly keyPage: number;
  private readonly maxBytes: number;
  private readonly maxSeq: Database.Statement;
  private readonly keyPages: Database.Statement[];
  private readonly eventsBetween: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly counters: Counters,
    opts: StoredKeysOptions = {},
  ) {
    this.keyPage = opts.keyPage ?? KEY_PAGE;
    this.maxBytes = opts.filterMaxBytes ?? Infinity;
    this.catchUpInCommit = opts.catchUpInCommit ?? CATCH_UP_IN_COMMIT;
    this.maxSeq = db.prepare(MAX_SEQ_SQL).pluck();
    // In pages rather than row by row: a call per row into the driver cost a third more. The
    // small tier first: a merge moves keys from it into the large one, never back (see build).
    this.keyPages = ['dedup_recent', 'dedup'].map((table) =>
      db.prepare(`SELECT k FROM ${table} WHERE k > ? ORDER BY k LIMIT ${this.keyPage}`).pluck(),
    );
    // Events deleted since are still identities the filter must hold. One statement, so one
    // snapshot: an event deleted meanwhile is in one table or the other, never in neither.
    this.eventsBetween = db
      .prepare(
        `SELECT topic, event_id FROM events WHERE seq > @after AND seq <= @through
         UNION ALL
         SELECT t.topic, g.event_id FROM gone AS g CROSS JOIN topic_ids AS t ON t.id = g.topic_id WHERE g.seq > @after AND g.seq <= @through`,
      )
      .raw();
  }

  /**
   * The filter for the next commit (undefined: look every key up). Starts the build unless
   * started; not awaited: this commit and the next ones look their keys up until it is built.
   * A build that failed is not tried again by every commit: the lookups stay exact.
   */
  forCommit(): KeyFilter | undefined {
    if (this.building === undefined) this.start().catch(() => undefined);
    if (this.filter !== undefined && this.catchingUp === undefined && (this.maxSeq.get() as number) - this.through > this.catchUpInCommit) {
      this.catchingUp = this.catchUpAside(this.filter);
    }
    return this.catchingUp === undefined ? this.filter : undefined;
  }

  /**
   * Reads what others committed since `through` into `f` by windows, as the build's catch-up
   * does. Commits meanwhile get no filter, so they neither use `f` nor move `through`; their
   * own events are read here too, being committed before the last window ends.
   */
  private async catchUpAside(f: KeyFilter): Promise<void> {
    try {
      const through = await this.readSince(f, this.through);
      if (through === undefined || this.filter !== f) return;
      if (f.full) {
        this.filter = undefined;
        this.lastBuild = { status: 'over-bound', keys: f.size().keys, maxBytes: this.maxBytes };
      } else this.through = through;
    } finally {
      this.catchingUp = undefined;
    }
  }

  /** Where the filter stands: what the next commit gets (tests and diagnostics). */
  status(): 'none' | 'catching-up' | 'current' {
    if (this.filter === undefined) return 'none';
    return this.catchingUp === undefined ? 'current' : 'catching-up';
  }

  /** In the commit's transaction: the keys of the events committed by others up to `through`. */
  catchUp(f: KeyFilter, through: number): void {
    if (through <= this.through) return;
    this.addEventsBetween(f, this.through, through);
    this.through = through;
  }

  /** After the commit that used `f`, whose last seq is `through`. */
  committed(f: KeyFilter | undefined, through: number): void {
    if (f !== undefined && f.full) {
      // Over its bound: from now on every key is looked up, and its memory is given back.
      this.filter = undefined;
      this.lastBuild = { status: 'over-bound', keys: f.size().keys, maxBytes: this.maxBytes };
    } else if (f !== undefined) {
      // Only once committed: a rolled-back commit's events may be stored by another later.
      this.through = through;
    }
  }

  /**
   * Starts building the filter (unless started) and resolves once it is built. Commits need
   * not wait: until then each looks its keys up in the dedup tiers, exact, only slower.
   */
  prepare(onProgress?: FilterProgress): Promise<FilterBuild> {
    return this.lastBuild !== undefined ? Promise.resolve(this.lastBuild) : this.start(onProgress);
  }

  private start(onProgress?: FilterProgress): Promise<FilterBuild> {
    this.building ??= this.build(onProgress).then((outcome) => (this.lastBuild = outcome));
    return this.building;
  }

  private addEventsBetween(f: KeyFilter, after: number, through: number): void {
    for (const [topic, eventId] of this.eventsBetween.iterate({ after, through }) as IterableIterator<[string, string | Buffer]>) {
      f.add(dedupKey(topic, unpackId(eventId)));
    }
  }

  /**
   * Reads every stored key into a new filter, a page per turn of the event loop, each page its
   * own short read (no snapshot held for minutes: the write-ahead log could not be
   * checkpointed meanwhile), while this writer and others commit. Sound because:
   * - `through` is read first: every event up to it is committed, its key in one of the tiers;
   * - the small tier is read first, then the large one: a key is in the large tier for good
   *   once there, and a merge moves keys from the small tier into the large one in one
   *   transaction, so a key in the small tier at the start is read in one or the other;
   * - every event after `through` (this writer's commits during the build included, which
   *   looked their keys up and add none) is read by the catch-up, by seq, before the filter
   *   is used; only the few committed in the last turn are left to the next commit's.
   */
  private async build(onProgress: FilterProgress | undefined): Promise<FilterBuild> {
    if (!this.db.open) return { status: 'closed' };
    const through = this.maxSeq.get() as number;
    const total = this.counters.get('unique_processed');
    if (filterBytesFor(total) > this.maxBytes) return { status: 'over-bound', keys: total, maxBytes: this.maxBytes };
    const f = new KeyFilter(total, this.maxBytes);
    const tiers = await this.readTiers(f, total, onProgress);
    if (tiers !== undefined) return tiers;
    const caughtUp = await this.readSince(f, through);
    if (caughtUp === undefined) return { status: 'closed' };
    if (f.full) return { status: 'over-bound', keys: f.size().keys, maxBytes: this.maxBytes };
    this.filter = f;
    this.through = caughtUp;
    return { status: 'built', ...f.size() };
  }

  /** Both tiers' keys into `f`; how the build ended if it ended there. */
  private async readTiers(f: KeyFilter, total: number, onProgress: FilterProgress | undefined): Promise<FilterBuild | undefined> {
    let read = 0;
    for (const page of this.keyPages) {
      // Keys are never negative.
      for (let after = -1; ; ) {
        await turn();
        if (!this.db.open) return { status: 'closed' };
        const keys = page.all(after) as number[];
        for (const k of keys) f.add(k);
        if (f.full) return { status: 'over-bound', keys: total, maxBytes: this.maxBytes };
        onProgress?.((read += keys.length), total);
        if (keys.length < this.keyPage) break;
        after = keys[this.keyPage - 1]!;
      }
    }
    return undefined;
  }

  /**
   * The catch-up, by windows of seqs: each window's end is read before it, so every seq in it
   * is committed, in `events` or `gone`. The last seq read, or undefined if the store closed.
   */
  private async readSince(f: KeyFilter, from: number): Promise<number | undefined> {
    let through = from;
    for (;;) {
      const head = this.maxSeq.get() as number;
      if (head <= through) return through;
      const upTo = Math.min(head, through + this.keyPage);
      this.addEventsBetween(f, through, upTo);
      through = upTo;
      await turn();
      if (!this.db.open) return undefined;
    }
  }
}
