// One writer at a time on a SQLite store: the workers share a lease in Redis, and only its
// holder takes jobs; the others stand by, each ready to take the lease when the writer stops.
//
// Why: SQLite lets one process write at a time, and a commit that follows another
// process' commit starts with an empty page cache (it reads again every page it touches).
// Two workers taking turns pay that on every commit and each pays BullMQ's per-job work for
// half the jobs; one worker taking every job commits the same events for less CPU and
// sooner (measured in docs/performance.md). The others are there for when it stops.
//
// When the writer stops:
// - cleanly (SIGTERM): it frees the lease once its jobs are committed; a standby takes it at
//   its next try, within half a second;
// - by dying: the lease's own Redis connection, named after the writer, closes with the
//   process (the kernel closes a dead process' sockets), and a standby that finds the holder's
//   connection gone takes the lease at once. All workers of a SQLite store share one host, so
//   the writer's process and its connection end together;
// - by hanging (connection open, nothing renewed): the lease lapses after its length.
// A writer busy for a second or two (a long commit, a collector pause) keeps the lease: its
// length (SQLITE_WRITER_LEASE_MS) is what a writer may go without renewing, not how fast a
// dead one is replaced.
//
// The lease only says who should write; it guards nothing. Two workers writing at once (a
// writer hung past its lease that wakes up, Redis restarted without the key) stay exactly as
// correct as ever, only slower, until the one that finds the lease gone stops taking jobs.
import type { Redis } from 'ioredis';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { queueKey } from '../../shared/queue.js';

/**
 * Renews the lease if this worker holds it, takes it if it is free or held by `gone` (a
 * holder whose connection has closed): 1 when held after the call.
 */
const TAKE_OR_RENEW = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if (not holder) or (ARGV[3] ~= '' and holder == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

/** Frees the lease if this worker holds it, so a standby need not wait for it to lapse. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/** How long a stop waits to free the lease before leaving it to lapse. */
const RELEASE_WAIT_MS = 1000;
/** How often a standby looks whether the writer is still there (a writer renews at least this often). */
const TRY_MS = 500;

export function writerLeaseKey(queueName: string): string {
  return queueKey(queueName, 'aggregator:sqlite-writer');
}

/** The name of the Redis connection a worker holds its lease on: a standby looks for it. */
export function leaseConnectionName(id: string): string {
  return `aggregator-lease:${id}`;
}

export type LeaseRole = 'writer' | 'standby';

type LeaseOptions = {
  /** A connection of the lease's own, named leaseConnectionName(id). */
  redis: Redis;
  queueName: string;
  /** This worker's id (its heartbeat's): what the lease holds while it is the writer. */
  id: string;
  /** A holder that has not renewed for this long loses the lease to a standby, even with its connection open. */
  ttlMs: number;
  log: Logger;
  /** This worker now holds the lease: take jobs. */
  onWriter: () => void;
  /** Another worker holds the lease now: stop taking jobs (those under way may finish). */
  onStandby: () => Promise<void>;
};

export class WriterLease {
  private readonly key: string;
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  private ticking: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: LeaseOptions) {
    this.key = writerLeaseKey(opts.queueName);
  }

  /** Tries for the lease now, then keeps trying (a standby) or renewing it (the writer). */
  start(): void {
    if (this.timer !== undefined || this.closing !== undefined) return;
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.min(TRY_MS, Math.floor(this.opts.ttlMs / 3))));
    void this.tick();
  }

  get role(): LeaseRole {
    return this.held ? 'writer' : 'standby';
  }

  /** One try (or renewal), and the change of role it brings; never two at once. */
  tick(): Promise<void> {
    this.ticking ??= this.takeOrRenew().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  /** The holder, if another worker holds the lease and its lease connection has closed. */
  private async goneHolder(): Promise<string> {
    const holder = await this.opts.redis.get(this.key);
    if (holder === null || holder === this.opts.id) return '';
    const clients = (await this.opts.redis.call('CLIENT', 'LIST', 'TYPE', 'normal')) as string;
    return clients.includes(` name=${leaseConnectionName(holder)} `) ? '' : holder;
  }

  private async takeOrRenew(): Promise<void> {
    // With Redis away no job moves either way: the role stays as it is until Redis answers.
    // (This connection would queue the command until then, and a stop would wait for it.)
    if (this.closing !== undefined || this.opts.redis.status !== 'ready') return;
    let holds: boolean;
    try {
      const gone = this.held ? '' : await this.goneHolder();
      holds = (await this.opts.redis.eval(TAKE_OR_RENEW, 1, this.key, this.opts.id, String(this.opts.ttlMs), gone)) === 1;
      if (holds && gone !== '' && !this.held) this.opts.log.warn({ lease: this.key, writer: gone }, "the writer's lease connection closed (it died): taking over");
    } catch (err) {
      this.opts.log.debug({ err: errorMessage(err) }, 'writer lease not renewed');
      return;
    }
    if (this.closing !== undefined) return;
    if (holds && !this.held) {
      this.held = true;
      this.opts.log.info({ lease: this.key }, 'writing: this worker takes the jobs (it holds the SQLite writer lease)');
      this.opts.onWriter();
    } else if (!holds && this.held) {
      this.held = false;
      this.opts.log.warn({ lease: this.key }, 'standing by: another worker took the SQLite writer lease; jobs under way finish here');
      await this.opts.onStandby();
    }
  }

  /** Stops renewing and frees the lease if held (a standby takes over at its next try). */
  close(): Promise<void> {
    clearInterval(this.timer);
    this.closing ??= (async () => {
      // A try under way when Redis went away may never answer: the stop does not wait past
      // RELEASE_WAIT_MS for it, nor for the release; a lease not freed lapses by itself.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, RELEASE_WAIT_MS)));
      const release = (async () => {
        await this.ticking;
        if (!this.held || this.opts.redis.status !== 'ready') return;
        this.held = false;
        await this.opts.redis.eval(RELEASE, 1, this.key, this.opts.id).catch(() => undefined);
      })();
      await Promise.race([release, late]);
      clearTimeout(timer);
    })();
    return this.closing;
  }
}
