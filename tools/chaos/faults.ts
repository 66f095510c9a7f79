// The faults: workers and the API killed (SIGKILL) or stopped (SIGTERM) and restarted, Redis
// killed and restarted; which processes died on their own; and how long a killed worker's
// jobs waited before another worker had committed them.
import { Redis } from 'ioredis';
import { KEY_PREFIX } from '../../shared/queue.js';
import type { RedisServer } from '../../scripts/redis-server.js';
import type { Cluster, Proc } from '../harness/cluster.js';
import { bump, type Ledger } from './ledger.js';
import { pause, type Random } from './random.js';

const FAULTS = ['worker-kill', 'worker-kill', 'worker-kill', 'api-kill', 'api-kill', 'redis-kill', 'redis-kill', 'worker-term', 'api-term'] as const;

export class Faults {
  /** Faults injected, by kind. */
  readonly injected: Record<string, number> = {};
  readonly unexpectedExits: string[] = [];
  /** Seconds until the jobs a killed worker held were all committed by another, per kill. */
  readonly recoveries: number[] = [];
  /** Processes stopped on purpose: their exit is no failure. */
  private readonly expected = new WeakSet<Proc>();
  private readonly measuring: Promise<void>[] = [];
  private readonly probe: Redis;
  private readonly activeKey = `${KEY_PREFIX}:chaos:active`;
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly redis: RedisServer,
    private readonly random: Random,
    private readonly ledger: Ledger,
  ) {
    this.probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    this.probe.on('error', () => undefined); // Redis is killed on purpose; the probe waits it out
    this.watch(cluster.api);
    cluster.workers.forEach((w) => this.watch(w));
  }

  total(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  /** Marks every process of the cluster as stopped on purpose (the end of the run). */
  expectAllToStop(): void {
    [this.cluster.api, ...this.cluster.workers].forEach((p) => p && this.expected.add(p));
  }

  async inject(): Promise<string> {
    const c = this.cluster;
    const fault = this.random.pick(FAULTS);
    switch (fault) {
      case 'worker-kill':
      case 'worker-term': {
        const victim = this.random.pick(this.liveWorkers());
        const active = fault === 'worker-kill' ? await this.probe.lrange(this.activeKey, 0, -1).catch(() => []) : [];
        await this.stopOnPurpose(victim, fault === 'worker-kill' ? 'kill' : 'term');
        if (active.length > 0) this.measuring.push(this.measureRecovery(active));
        this.watch(await c.startWorker());
        break;
      }
      case 'api-kill':
      case 'api-term':
        await this.stopOnPurpose(c.api, fault === 'api-kill' ? 'kill' : 'term');
        this.watch(await c.startApi());
        break;
      case 'redis-kill':
        await this.redis.kill();
        await pause(this.random.between(100, 1500)); // Redis away for a while: publishes answer 503
        await this.redis.start();
        break;
    }
    bump(this.injected, fault);
    return fault;
  }

  /** Waits for the recovery measurements still running, then lets the probe go. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.measuring);
    this.probe.disconnect();
  }

  private watch(p: Proc): void {
    void p.exited.then((exit) => {
      if (!this.expected.has(p)) this.unexpectedExits.push(`${p.name} exited by itself (${JSON.stringify(exit)}):\n${p.log().split('\n').slice(-15).join('\n')}`);
    });
  }

  private async stopOnPurpose(p: Proc, how: 'kill' | 'term'): Promise<void> {
    this.expected.add(p);
    const exit = how === 'kill' ? await p.kill() : await p.term();
    if (how === 'term' && exit.code !== 0) this.ledger.anomalies.push(`${p.name} did not stop cleanly on SIGTERM: ${JSON.stringify(exit)}`);
  }

  private liveWorkers(): Proc[] {
    return this.cluster.workers.filter((w) => w.alive() && !this.expected.has(w));
  }

  // The jobs active at the kill, until none of them is active any more (BullMQ's lock must
  // expire and its stalled-job check must run first: JOB_LOCK_MS).
  private async measureRecovery(active: readonly string[]): Promise<void> {
    const started = performance.now();
    for (let i = 0; i < 600; i++) {
      await pause(100);
      const still = await this.probe.lrange(this.activeKey, 0, -1).catch(() => undefined);
      if (still !== undefined && !active.some((id) => still.includes(id))) {
        this.recoveries.push((performance.now() - started) / 1000);
        return;
      }
    }
  }
}
