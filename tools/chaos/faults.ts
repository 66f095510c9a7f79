// The faults: workers and the API killed (SIGKILL) or stopped (SIGTERM) and restarted; Redis
// killed and restarted; with the owned PostgreSQL, the server SIGKILLed and its sessions
// terminated; the links to Redis and PostgreSQL reset, cut or blackholed (infra.ts). Also:
// which processes died on their own, how long a killed worker's jobs waited before another
// worker had committed them, and how long the service took to be ready after each outage.
import { Redis } from 'ioredis';
import { KEY_PREFIX } from '../../shared/queue.js';
import type { Cluster, Proc } from '../harness/cluster.js';
import { linkCut, linkReset, pgKill, pgTerminate, type Infra, type LinkName } from './infra.js';
import { bump, type Ledger } from './ledger.js';
import { pause, type Random } from './random.js';

type Kind = 'worker-kill' | 'worker-term' | 'api-kill' | 'api-term' | 'redis-kill' | 'pg-kill' | 'pg-terminate' | 'link-reset' | 'link-cut';
type Draw = { kind: Kind; link?: LinkName };

// One deck holds each fault in its share; it is shuffled, dealt out, and dealt again. Every
// kind comes once per deck, so a short run meets them all and a long one in these shares.
const DECK: readonly Draw[] = [
  { kind: 'worker-kill' },
  { kind: 'worker-kill' },
  { kind: 'worker-term' },
  { kind: 'api-kill' },
  { kind: 'api-term' },
  { kind: 'redis-kill' },
  { kind: 'link-reset', link: 'redis' },
  { kind: 'link-cut', link: 'redis' },
  { kind: 'pg-kill' },
  { kind: 'pg-terminate' },
  { kind: 'link-reset', link: 'pg' },
  { kind: 'link-cut', link: 'pg' },
];

const needsPostgres = (d: Draw) => d.kind.startsWith('pg-') || d.link === 'pg';

/** Faults after which the service is timed until it answers /ready again. */
const OUTAGES: readonly Kind[] = ['redis-kill', 'pg-kill', 'pg-terminate', 'link-reset', 'link-cut'];

/** The faults of one run's deck: those of DECK that apply to its store. */
export function deckFor(hasPostgres: boolean): Draw[] {
  return DECK.filter((d) => hasPostgres || !needsPostgres(d));
}

export class Faults {
  /** Faults injected, by kind. */
  readonly injected: Record<string, number> = {};
  /** The same, by kind and link (and a cut's manner). */
  readonly detail: Record<string, number> = {};
  readonly unexpectedExits: string[] = [];
  /** Seconds until the jobs a killed worker held were all committed by another, per kill. */
  readonly recoveries: number[] = [];
  /** Seconds from the end of an outage until GET /ready answered 200, by fault kind. */
  readonly readyAgain: Record<string, number[]> = {};
  /** Outages after which /ready did not answer 200 within a minute. */
  readonly neverReady: string[] = [];
  /** Processes stopped on purpose: their exit is no failure. */
  private readonly expected = new WeakSet<Proc>();
  private readonly measuring: Promise<void>[] = [];
  private readonly probe: Redis;
  private readonly activeKey = `${KEY_PREFIX}:chaos:active`;
  private readonly deck: Draw[];
  private hand: Draw[] = [];
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly infra: Infra,
    private readonly random: Random,
    private readonly ledger: Ledger,
  ) {
    this.deck = deckFor(infra.pg !== undefined);
    // Straight to Redis, past the proxy: the probe measures the service, not its own link.
    this.probe = new Redis(infra.redis.url, { maxRetriesPerRequest: 1 });
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

  /** Injects the next fault of the deck; what it was, in words. */
  async inject(): Promise<string> {
    const draw = this.draw();
    const what = draw.kind.startsWith('worker-') || draw.kind.startsWith('api-') ? await this.processFault(draw.kind) : await this.infraFault(draw);
    bump(this.injected, draw.kind);
    bump(this.detail, draw.link === undefined ? draw.kind : what.split(' ').slice(0, draw.kind === 'link-cut' ? 3 : 2).join(' '));
    if (OUTAGES.includes(draw.kind)) this.measuring.push(this.measureReady(draw.kind));
    return what;
  }

  /** Waits for the recovery measurements still running, then lets the probe go. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.measuring);
    this.probe.disconnect();
  }

  private draw(): Draw {
    if (this.hand.length === 0) {
      this.hand = [...this.deck];
      for (let i = this.hand.length - 1; i > 0; i--) {
        const j = this.random.between(0, i);
        [this.hand[i], this.hand[j]] = [this.hand[j]!, this.hand[i]!];
      }
    }
    return this.hand.pop()!;
  }

  private async processFault(kind: Kind): Promise<string> {
    const c = this.cluster;
    const how = kind.endsWith('-kill') ? 'kill' : 'term';
    if (kind.startsWith('worker-')) {
      const victim = this.random.pick(this.liveWorkers());
      const active = how === 'kill' ? await this.probe.lrange(this.activeKey, 0, -1).catch(() => []) : [];
      await this.stopOnPurpose(victim, how);
      if (active.length > 0) this.measuring.push(this.measureRecovery(active));
      this.watch(await c.startWorker());
      return `${kind} ${victim.name}`;
    }
    await this.stopOnPurpose(c.api, how);
    this.watch(await c.startApi());
    return kind;
  }

  private async infraFault(draw: Draw): Promise<string> {
    const { redis, pg, links } = this.infra;
    switch (draw.kind) {
      case 'redis-kill':
        await redis.kill();
        await pause(this.random.between(100, 1500)); // Redis away for a while: publishes answer 503
        await redis.start();
        return 'redis-kill';
      case 'pg-kill':
        return pgKill(pg!, this.random);
      case 'pg-terminate':
        return pgTerminate(pg!);
      case 'link-reset':
        return linkReset(links, draw.link!);
      default:
        return linkCut(links, draw.link!, this.random);
    }
  }

  private watch(p: Proc): void {
    void p.exited.then((exit) => {
      if (!this.expected.has(p)) this.unexpectedExits.push(`${p.name} exited by itself (${JSON.stringify(exit)}):\n${p.log().split('\n').slice(-15).join('\n')}`);
    });
  }

  private async stopOnPurpose(p: Proc, how: 'kill' | 'term'): Promise<void> {
    this.expected.add(p);
    const exit = how === 'kill' ? await p.kill() : await p.term();
    if (how === 'term' && exit.code !== 0) {
      const tail = p.log().split('\n').slice(-12).join('\n');
      this.ledger.anomalies.push(`${p.name} did not stop cleanly on SIGTERM: ${JSON.stringify(exit)}; its last lines:\n${tail}`);
    }
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

  // /ready answers 200 once the API reaches both Redis and the store again (through the
  // proxies, as it always does): the time an operator would see the service out.
  private async measureReady(kind: Kind): Promise<void> {
    const started = performance.now();
    while (performance.now() - started < 60_000) {
      const res = await fetch(`${this.cluster.baseUrl}/ready`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      await res?.body?.cancel();
      if (res?.status === 200) {
        (this.readyAgain[kind] ??= []).push((performance.now() - started) / 1000);
        return;
      }
      await pause(100);
    }
    this.neverReady.push(kind);
  }
}
