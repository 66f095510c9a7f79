// Past one host: the API and the workers run as separate hosts that share nothing but
// PostgreSQL and Redis. Each host has a data directory of its own and, where this machine
// allows it (root, ip netns), a network namespace of its own; they reach PostgreSQL and
// Redis only through forwarders on the root side of their veth pairs. CI must run the
// namespace mode; TEST_HOSTS=loopback forces the fallback. Two faults: a worker host
// SIGKILLed mid-stream, and a worker host whose packets are dropped for a few seconds by a
// firewall rule in its namespace (iptables), as a switch or a partition would.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from '../../scripts/redis-server.js';
import { eventCountOfJobId, KEY_PREFIX } from '../../shared/queue.js';
import { workersKey, type WorkerState } from '../../shared/heartbeat.js';
import { STORE_FILE } from '../../shared/store/sqlite/schema.js';
import { startCluster, type Cluster, type Proc } from '../../tools/harness/cluster.js';
import { allEvents, publish, stats, type Stats } from '../../tools/harness/http.js';
import { ADMIN_URL } from '../../tools/harness/postgres.js';
import { waitFor } from '../../tools/harness/wait.js';
import { checkBooks, produce } from '../support/books.js';
import { makeHosts, ownNamespaces, type Host, type Hosts } from '../support/hosts.js';
import { requirePostgres } from '../support/postgres.js';
import { mixedChunks, workload, type Ev } from '../support/workload.js';

const TOTAL = 20_000;
const COPIES = 0.3;
/**
 * Producers send at this pace, not as fast as they can: a stream of a few seconds, so that
 * the kill falls inside it with work still flowing to every worker.
 */
const EVENTS_PER_SECOND = 5000;
/**
 * The first worker dies once this many events are accepted, at the first moment it is found
 * holding jobs. It is looked at frozen (SIGSTOP), so that what it holds cannot change between
 * the look and the SIGKILL; found empty-handed, it goes on (SIGCONT) and is looked at again.
 */
const KILL_AT = 6000;
/** For what a worker sent just before it froze to reach Redis, through the forwarders too. */
const SETTLE_MS = 50;
/**
 * How long the first worker gathers jobs before each commit. A worker's default is 20 ms, and
 * a kill would then most often find it with empty hands.
 */
const VICTIM_LINGER_MS = 500;
/** The producers hold the last quarter of the stream until the replacement worker is up. */
const HOLD_AT = (TOTAL * 3) / 4;
/** api, the two first workers, and the host the replacement worker starts on. */
const HOSTS = ['api', 'w1', 'w2', 'w3'];

/** The workers' heartbeats, read from Redis itself: /stats does not say when each was written. */
async function heartbeatsOf(client: Redis, queueName: string): Promise<WorkerState[]> {
  return Object.values(await client.hgetall(workersKey(queueName))).map((json) => JSON.parse(json) as WorkerState);
}

type ActiveJob = { id: string; worker: string | undefined };

/**
 * BullMQ's active jobs, each with the worker that holds its lock (a lock's token is the
 * worker's id, a colon and a counter). A dead worker's locks outlive it until they expire
 * (JOB_LOCK_MS), which is what shows the jobs it died holding.
 */
async function activeJobs(client: Redis, queueName: string): Promise<ActiveJob[]> {
  const prefix = `${KEY_PREFIX}:${queueName}`;
  const ids = await client.lrange(`${prefix}:active`, 0, -1);
  if (ids.length === 0) return [];
  const batch = client.pipeline();
  for (const id of ids) batch.get(`${prefix}:${id}:lock`);
  const replies = (await batch.exec()) ?? [];
  return ids.map((id, i) => {
    const token = replies[i]?.[1];
    return { id, worker: typeof token === 'string' ? token.slice(0, token.lastIndexOf(':')) : undefined };
  });
}

/** Jobs BullMQ found stalled (locked by a worker that stopped renewing) and handed on. */
async function stalledJobs(client: Redis, queueName: string): Promise<string[]> {
  const entries = await client.xrange(`${KEY_PREFIX}:${queueName}:events`, '-', '+');
  return entries.flatMap(([, fields]) => {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
    return f.get('event') === 'stalled' ? [f.get('jobId')!] : [];
  });
}

const key = (e: { topic: string; event_id: string }) => `${e.topic}\u0000${e.event_id}`;


type SendOptions = {
  deadline: number;
  onAccepted: (n: number) => void;
  /** Awaited before sending past `at` events. */
  hold?: { at: number; until: Promise<unknown> };
  eventsPerSecond?: number;
};

/** Single events, JSON batches and NDJSON batches, each retried until 202, within `deadline`. */
async function send(baseUrl: string, events: Ev[], opts: SendOptions) {
  const chunks = mixedChunks(events);
  let next = 0;
  let offered = 0;
  let retries = 0;
  const started = Date.now();
  const one = async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++]!;
      offered += chunk.length;
      if (opts.hold && offered > opts.hold.at) await opts.hold.until;
      if (opts.eventsPerSecond) {
        const due = started + ((offered - chunk.length) / opts.eventsPerSecond) * 1000;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      }
      for (;;) {
        if (Date.now() > opts.deadline) throw new Error(`sending did not finish in time (${retries} retries)`);
        const ndjson = chunk.length > 1 && chunk.length % 2 === 1;
        const r = await (ndjson
          ? publish(baseUrl, chunk.map((e) => JSON.stringify(e)).join('\n'), { contentType: 'application/x-ndjson', raw: true })
          : publish(baseUrl, chunk.length === 1 ? chunk[0] : { events: chunk })
        ).catch(() => undefined);
        if (r?.status === 202) {
          opts.onAccepted(chunk.length);
          break;
        }
        if (r !== undefined && r.status !== 503) throw new Error(`publish answered ${r.status}: ${JSON.stringify(r.body)}`);
        retries++;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, one));
  return { requests: chunks.length, retries };
}

describe('past one host: API and workers share only PostgreSQL and Redis', function () {
  let hosts: Hosts | undefined;
  let redis: RedisServer | undefined;
  let redisDir: string | undefined;
  let cluster: Cluster | undefined;
  /** The test's own look at Redis, for what /stats does not tell: who holds which job. */
  let watch: Redis | undefined;

  before(async function () {
    this.timeout(60_000);
    await requirePostgres(this);
    redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-hosts-redis-'));
    // A private redis-server on loopback, never a container: the forwarders reach it there.
    redis = await startRedisServer({ dir: redisDir, logFile: path.join(redisDir, 'redis.log') });
    const pg = new URL(ADMIN_URL);
    hosts = await makeHosts(HOSTS, [
      { host: '127.0.0.1', port: redis.port },
      { host: pg.hostname, port: Number(pg.port || 5432) },
    ]);
    console.log(`      mode: ${hosts.mode} (${hosts.why})`);
    for (const h of hosts.all) console.log(`      host ${h.name}: ${h.namespace ?? 'no namespace'}, ${h.address}, DATA_DIR ${h.dataDir}`);
  });

  after(async function () {
    this.timeout(60_000);
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${(err as Error).message}`);
      }
    };
    // Processes first: a namespace outlives its deletion while a process holds it.
    watch?.disconnect();
    await attempt('cluster', async () => cluster?.destroy());
    await attempt('hosts', async () => problems.push(...((await hosts?.destroy()) ?? [])));
    await attempt('redis', async () => redis?.stop());
    if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true });
    const left = ownNamespaces();
    if (left.length > 0) problems.push(`namespaces left behind: ${left.join(', ')}`);
    if (hosts) console.log(`      cleanup: ${problems.length === 0 ? 'nothing left behind' : problems.join('; ')}`);
    if (problems.length > 0) throw new Error(`cleanup: ${problems.join('; ')}`);
  });

  /**
   * The API and one worker on PostgreSQL, each process on the host `where` names, reaching
   * Redis and PostgreSQL through that host's forwarders, with `env` added.
   */
  const clusterOn = (h: Hosts, where: (kind: 'api' | 'worker', name: string) => { host: Host; env: Record<string, string> }) =>
    startCluster({
      redisUrl: redis!.url,
      workers: 1,
      store: 'postgres',
      dataDir: h.host('api').dataDir,
      logDir: h.logDir,
      apiHost: h.host('api').address,
      place: (kind, name, env) => {
        const { host, env: added } = where(kind, name);
        const reach = { DATA_DIR: host.dataDir, REDIS_URL: host.reach(env.REDIS_URL!), DATABASE_URL: host.reach(env.DATABASE_URL!) };
        return { command: host.command, env: { ...reach, ...added } };
      },
    });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.logTail(40));
  });

  it(`counts ${TOTAL.toLocaleString('en')} events with ${COPIES * 100}% copies exactly while a worker host is SIGKILLed mid-stream`, async function () {
    this.timeout(240_000);
    const h = hosts!;
    const hostOf = (kind: 'api' | 'worker', name: string): Host =>
      kind === 'api' ? h.host('api') : h.host(`w${/^worker-(\d+)$/.exec(name)![1]}`);
    // The first worker alone at first: the first job shows which BullMQ worker id it has.
    cluster = await clusterOn(h, (kind, name) => {
      const host = hostOf(kind, name);
      const env: Record<string, string> = host.name === 'w1' ? { WORKER_LINGER_MS: String(VICTIM_LINGER_MS) } : {};
      return { host, env };
    });
    const c = cluster;
    const victim = c.workers[0]!;
    const w = (watch = new Redis(redis!.url, { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000 }));

    const { events } = workload(TOTAL, COPIES, { source: 'hosts-test' });
    const unique = new Set(events.map(key)).size;
    const started = performance.now();
    const deadline = Date.now() + 120_000;
    let accepted = 0;
    const count = (n: number) => (accepted += n);

    // The first event, to the first worker alone: it commits a batch before it dies, and its
    // lock on that job names it.
    await send(c.baseUrl, events.slice(0, 1), { deadline, onAccepted: count });
    const victimWorker = await waitFor(async () => (await activeJobs(w, c.queueName)).find((j) => j.worker)?.worker, {
      what: 'the first worker to take the first job',
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    await waitFor(async () => (await stats(c.baseUrl)).unique_processed === 1, { what: 'the first event stored', timeoutMs: 10_000 });
    const survivor = await c.startWorker();
    // Each process runs where it was placed: in netns mode, inside its host's namespace.
    if (h.mode === 'netns') {
      expect(h.host('api').pids()).to.include(c.api.child.pid);
      expect(h.host('w1').pids()).to.include(victim.child.pid);
      expect(h.host('w2').pids()).to.include(survivor.child.pid);
    }

    /** `held`: the jobs it was found holding, frozen, and so the jobs it died holding. */
    let killed: { accepted: number; held: string[]; looks: number } | undefined;
    let looks = 0;
    let replacement: Promise<Proc> | undefined;
    let markReplaced: () => void = () => undefined;
    const replaced = new Promise<void>((resolve) => (markReplaced = resolve));
    const holdUntil = Promise.race([
      replaced,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no replacement worker within 30 s')), 30_000).unref()),
    ]);
    holdUntil.catch(() => undefined);
    let streaming = true;
    const watching = (async () => {
      while (streaming && killed === undefined && Date.now() < deadline) {
        if (accepted >= KILL_AT && victim.alive()) {
          process.kill(victim.child.pid!, 'SIGSTOP');
          looks++;
          await new Promise((r) => setTimeout(r, SETTLE_MS));
          const mine = (await activeJobs(w, c.queueName)).filter((j) => j.worker === victimWorker);
          if (mine.length > 0) {
            killed = { accepted, held: mine.map((j) => j.id), looks };
            // The replacement starts once the victim is really gone, while the stream still runs.
            replacement = victim.kill().then(() => c.startWorker());
            replacement.then(markReplaced, () => undefined);
            break;
          }
          process.kill(victim.child.pid!, 'SIGCONT');
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const sent = await send(c.baseUrl, events.slice(1), {
      deadline,
      eventsPerSecond: EVENTS_PER_SECOND,
      hold: { at: HOLD_AT, until: holdUntil },
      onAccepted: count,
    }).finally(() => (streaming = false));
    await watching;
    expect(killed, 'the first worker was killed mid-stream').to.not.equal(undefined);
    const exit = await victim.exited;
    expect(exit.signal).to.equal('SIGKILL');
    expect(() => process.kill(victim.child.pid!, 0), 'the killed worker is gone').to.throw();
    if (h.mode === 'netns') expect(h.host('w1').pids(), 'nothing is left on the killed host').to.deep.equal([]);
    const held = killed!.held;
    const third = await replacement!;
    if (h.mode === 'netns') expect(h.host('w3').pids()).to.include(third.child.pid);

    const s: Stats = await waitFor(
      async () => {
        const now = await stats(c.baseUrl);
        return now.pending === 0 && now.received === TOTAL && now.unique_processed + now.duplicate_dropped === TOTAL && now;
      },
      { what: `a drained queue with ${TOTAL} events accounted for`, timeoutMs: 90_000 },
    );
    const seconds = (performance.now() - started) / 1000;
    expect(s.received).to.equal(TOTAL);
    expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
    expect(s.unique_processed).to.equal(unique);
    expect(s.duplicate_dropped).to.equal(TOTAL - unique);
    expect((s.store as { kind: string }).kind).to.equal('postgres');

    const stored = await allEvents(c.baseUrl);
    const keys = stored.map(key);
    expect(new Set(keys).size, 'no identity stored twice').to.equal(keys.length);
    expect(keys.length).to.equal(unique);
    const wanted = new Set(events.map(key));
    expect(keys.every((k) => wanted.has(k)), 'only sent identities are stored').to.equal(true);

    // The database holds the events: no host's data directory has a store file.
    for (const host of h.all) {
      expect(fs.existsSync(host.dataDir), `${host.name}'s DATA_DIR exists`).to.equal(true);
      expect(fs.existsSync(path.join(host.dataDir, STORE_FILE)), `${host.name}'s DATA_DIR holds no ${STORE_FILE}`).to.equal(false);
    }
    // Who committed what, by the first heartbeats written after the drain: the replacement,
    // on a host of its own, must have taken part.
    const drainedAt = Date.now();
    const beats = await waitFor(
      async () => {
        const all = await heartbeatsOf(w, c.queueName);
        const fresh = [survivor, third].map((p) => all.find((w) => w.pid === p.child.pid));
        return fresh.every((w) => w !== undefined && w.at > drainedAt) && (fresh as WorkerState[]);
      },
      { what: 'heartbeats written after the drain', timeoutMs: 15_000 },
    );
    const [w2, w3] = beats.map((w) => w.committed_events) as [number, number];
    expect(w3, 'the replacement worker committed events').to.be.greaterThan(0);
    // Other hosts took over the jobs the victim died holding, once its locks expired.
    const stalled = await stalledJobs(w, c.queueName);
    expect(stalled, 'the jobs the killed worker held were taken over').to.include.members(held);
    const heldEvents = held.reduce((n, id) => n + eventCountOfJobId(id), 0);
    // Each job is committed by one worker, and with no redelivery, counted by that one alone.
    const victimShare = s.redeliveries === 0 ? String(TOTAL - w2 - w3) : 'the rest';
    console.log(
      `      ${TOTAL} events (${unique} unique, ${TOTAL - unique} copies) in ${sent.requests + 1} requests (${sent.retries} retries), ` +
        `worker on w1 SIGKILLed at ${killed!.accepted} accepted (look ${killed!.looks}) holding ${held.length} jobs (${heldEvents} events), ` +
        `replacement on w3: ${seconds.toFixed(1)} s end to end; ` +
        `received ${s.received} = ${s.unique_processed} unique + ${s.duplicate_dropped} dropped, ${stored.length} stored, ` +
        `redeliveries ${String(s.redeliveries)}, ${stalled.length} stalled jobs taken over; committed: w2 ${w2}, w3 ${w3}, w1 (killed) ${victimShare}`,
    );
  });

  it("keeps exact books while a worker host's packets to Redis and PostgreSQL are dropped for 3 s mid-load (iptables in its namespace)", async function () {
    const h = hosts!;
    // A namespace of its own is what lets a rule drop one host's packets and no other's.
    if (h.mode !== 'netns') this.skip();
    this.timeout(180_000);
    await cluster?.destroy();
    const host = h.host('w2');
    cluster = await clusterOn(h, (kind) => ({ host: kind === 'api' ? h.host('api') : host, env: {} }));
    const c = cluster;
    const worker = c.workers[0]!;
    expect(host.pids()).to.include(worker.child.pid);
    // The host reaches both through the root side of its link: one rule drops all it sends there.
    const gateway = new URL(host.reach(redis!.url)).hostname;
    const rule = ['OUTPUT', '-d', gateway, '-j', 'DROP'];
    const iptables = (...args: string[]) => execFileSync('ip', ['netns', 'exec', host.namespace!, 'iptables', ...args], { stdio: 'pipe', timeout: 10_000 });

    const { events } = workload(4000, COPIES, { source: 'hosts-drop' });
    const chunks = mixedChunks(events);
    const half = Math.ceil(chunks.length / 2);
    const before = await produce(c.baseUrl, chunks.slice(0, half));
    iptables('-I', ...rule);
    let dropped = true;
    try {
      // Nothing the worker sends arrives: no reset, no refusal, its connections just go quiet.
      const during = produce(c.baseUrl, chunks.slice(half));
      await new Promise((r) => setTimeout(r, 3000));
      const counted = (execFileSync('ip', ['netns', 'exec', host.namespace!, 'iptables', '-L', 'OUTPUT', '-v', '-x', '-n'], { encoding: 'utf8' }).match(/^\s*(\d+)\s+\d+\s+DROP/m) ?? [])[1];
      iptables('-D', ...rule);
      dropped = false;
      expect(Number(counted), 'packets the rule dropped').to.be.greaterThan(0);
      const after = await during;
      await checkBooks(c.baseUrl, events, [...before.answered, ...after.answered], before.accepted + after.accepted);
    } finally {
      if (dropped) iptables('-D', ...rule);
    }
    expect(worker.alive(), 'the worker survived the drop').to.equal(true);
    console.log(`      ${events.length} events, ${new Set(events.map(key)).size} unique; w2's packets to ${gateway} dropped for 3 s mid-load`);
  });
});
