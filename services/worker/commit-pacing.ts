// When a committer commits next: how long a group gathers, how soon a commit that lost the
// write lock is tried again, and the backoff while the store fails.
import type { Submitted } from './committer.js';

/** How long after a commit found the write lock taken the store counts as contended. */
const CONTENDED_FOR_MS = 1000;

const MAX_BACKOFF_MS = 5000;

/**
 * A commit that lost a race and may simply be tried again: SQLite's write lock held by
 * another process, or PostgreSQL's deadlock or serialization failure between two workers.
 */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code === '40P01' || code === '40001');
}

type PacingOptions = { lingerMs: number; waitLingerMs?: number; contendedLingerMs?: number; busyPatienceMs?: number };

export class CommitPacing {
  private readonly opts: PacingOptions;
  /** Failed commits since the last that succeeded (a lost race for the lock is not one). */
  private failures = 0;
  /** When commits began to find the write lock taken (Date.now()), while they still do. */
  private busySince: number | undefined;
  /** When a commit last found the write lock taken (performance.now()). */
  private lastBusyAt = -Infinity;

  constructor(opts: PacingOptions) {
    this.opts = opts;
  }

  /** A retry after a failure is already scheduled. */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** A producer waiting for the job's results (`?wait`) is never kept waiting longer than waitLingerMs. */
  lingerMs(job: Submitted): number {
    if (job.reply === true) return Math.min(this.opts.lingerMs, this.opts.waitLingerMs ?? this.opts.lingerMs);
    const contended = performance.now() - this.lastBusyAt < CONTENDED_FOR_MS;
    return contended ? Math.max(this.opts.lingerMs, this.opts.contendedLingerMs ?? 0) : this.opts.lingerMs;
  }

  /** A commit found the write lock taken: the delay before trying again, or undefined once patience ran out. */
  busy(): number | undefined {
    this.lastBusyAt = performance.now();
    this.busySince ??= Date.now();
    return Date.now() - this.busySince < (this.opts.busyPatienceMs ?? 10_000) ? 1 + Math.random() * 2 : undefined;
  }

  /** A commit failed: the backoff before the next try. */
  failed(): number {
    this.failures++;
    return Math.min(MAX_BACKOFF_MS, 50 * 2 ** Math.min(this.failures, 10));
  }

  /** A commit succeeded: how many failed before it. */
  succeeded(): number {
    const failures = this.failures;
    this.failures = 0;
    this.busySince = undefined;
    return failures;
  }
}
