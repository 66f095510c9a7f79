// This worker's heartbeat (shared/heartbeat.ts): its state and metrics written to Redis
// every few seconds, so the API shows live workers and what is wrong with them. Closing
// stops the beats and removes the entry: the API stops counting the worker at once.
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BATCH_EVENTS_BOUNDS, COMMIT_SECONDS_BOUNDS, emptyHistogram } from '../../shared/histogram.js';
import { HEARTBEAT_MS, removeHeartbeat, writeHeartbeat, type WorkerState } from '../../shared/heartbeat.js';
import type { Logger } from '../../shared/log.js';
import type { Committer, CommitterStats } from './committer.js';

/** How long a stop waits to remove the entry before leaving it to expire. */
const REMOVE_WAIT_MS = 2000;

const NOTHING_COMMITTED: CommitterStats = {
  commits: 0,
  jobs: 0,
  events: 0,
  lastError: null,
  batchEvents: emptyHistogram(BATCH_EVENTS_BOUNDS),
  commitSeconds: emptyHistogram(COMMIT_SECONDS_BOUNDS),
};

export class Heartbeat {
  readonly state: WorkerState;
  /** Set once the store opens; until then the heartbeat says why no job is taken. */
  private committer: Committer | undefined;
  private readonly timer: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly queueName: string,
    log: Logger,
  ) {
    this.state = {
      id: `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
      pid: process.pid,
      host: os.hostname(),
      started_at: new Date().toISOString(),
      at: Date.now(),
      status: 'ok',
      error: null,
      committed_jobs: 0,
      committed_events: 0,
    };
    this.timer = setInterval(() => {
      // Not 'ok' before the store is open (the committer exists from then on): until then it
      // beats only to report a store it cannot open.
      if (this.committer === undefined && this.state.status === 'ok') return;
      this.beat().catch((err: unknown) => log.debug({ err }, 'heartbeat not written'));
    }, HEARTBEAT_MS);
  }

  /** The committer whose counts the heartbeat carries from now on. */
  follow(committer: Committer): void {
    this.committer = committer;
  }

  /** `problem`: what keeps the worker from taking jobs, or null when nothing does. */
  report(status: WorkerState['status'], problem: string | null): void {
    this.state.status = status;
    this.state.error = problem;
  }

  /** Writes the state now. */
  beat(): Promise<void> {
    const { state } = this;
    state.at = Date.now();
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    const s = this.committer?.stats() ?? NOTHING_COMMITTED;
    state.committed_jobs = s.jobs;
    state.committed_events = s.events;
    state.metrics = {
      commits: s.commits,
      batch_events: s.batchEvents,
      commit_seconds: s.commitSeconds,
      process: { cpu_seconds: (cpu.user + cpu.system) / 1e6, resident_memory_bytes: memory.rss, heap_used_bytes: memory.heapUsed },
    };
    const writing = writeHeartbeat(this.redis, this.queueName, state);
    this.writing = writing.catch(() => undefined);
    return writing;
  }

  /**
   * Stops beating and removes this worker's entry. A failure to remove is not an error: the
   * entry expires. With Redis away it is not tried, and it is given up after REMOVE_WAIT_MS:
   * the worker's connection queues commands until Redis returns, which would hold the stop.
   */
  close(): Promise<void> {
    clearInterval(this.timer);
    this.closing ??= (async () => {
      if (this.redis.status !== 'ready') return;
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, REMOVE_WAIT_MS)));
      const removed = this.writing.then(() => removeHeartbeat(this.redis, this.queueName, this.state.id)).catch(() => undefined);
      await Promise.race([removed, late]);
      clearTimeout(timer);
    })();
    return this.closing;
  }
}
