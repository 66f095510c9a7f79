// npm run test:containers: the project's own Dockerfiles and compose files, built and run for
// real on rootful podman, with local stand-ins for the base images (prepare.sh: no container
// registry is reachable from CI), then the Redis-backed integration tests once through
// testcontainers. Needs root. Ends with `containers: N passed, M failed`; exits non-zero on
// any failure or when its overall deadline (CONTAINERS_TIMEOUT_S, default 2400) runs out.
//
//   CONTAINERS_POSTGRES=0   skips the PostgreSQL scenario (docker-compose.postgres.yml), run by default
//   CONTAINERS_SKIP_MOCHA=1 leaves out the testcontainers run
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { killAll, killGroup, run, sleep, startBackground, until, type RunResult } from './proc.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CACHE = process.env.EA_CI_CACHE ?? '/var/cache/event-aggregator-ci';
const RUN_DIR = '/run/event-aggregator-ci';
const SOCKET = path.join(RUN_DIR, 'podman.sock');
const OVERALL_MS = Number(process.env.CONTAINERS_TIMEOUT_S ?? 2400) * 1000;
const started = performance.now();

// ---------------------------------------------------------------------------------------
// Results

let passed = 0;
let failed = 0;
const report: string[] = [];
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mb = (bytes: number) => `${Math.round(bytes / 1e6)} MB`;

function pass(name: string, detail = ''): void {
  passed++;
  console.log(`ok    ${name}${detail ? `: ${detail}` : ''}`);
}
function fail(name: string, detail: string): void {
  failed++;
  console.log(`FAIL  ${name}: ${detail}`);
}
/** One check: passes with the detail `fn` returns, fails with its error's message. */
async function check(name: string, fn: () => Promise<string | void>): Promise<boolean> {
  try {
    pass(name, (await fn()) ?? '');
    return true;
  } catch (err) {
    fail(name, err instanceof Error ? err.message : String(err));
    return false;
  }
}
function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

// ---------------------------------------------------------------------------------------
// podman, its socket and docker-compose

let podmanEnv: NodeJS.ProcessEnv = { ...process.env };
let servicePid: number | undefined;

async function sh(cmd: string, args: string[], timeoutMs = 60_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const r = await run(cmd, args, { timeoutMs, env: { ...podmanEnv, ...extraEnv }, cwd: ROOT });
  if (r.timedOut) throw new Error(`${cmd} ${args.join(' ')}: no end after ${secs(timeoutMs)}`);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${(r.stderr || r.stdout).trim().slice(-3000)}`);
  return r;
}
const podman = (args: string[], timeoutMs = 60_000) => sh('podman', args, timeoutMs);
const quietly = async (p: Promise<unknown>) => {
  await p.catch(() => undefined);
};

/** GET /_ping on the service's socket. */
function socketAnswers(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(SOCKET);
    let reply = '';
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
    socket.on('connect', () => socket.write('GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n'));
    socket.on('data', (c) => (reply += c.toString()));
    socket.on('end', () => resolve(reply.endsWith('OK')));
  });
}

const SERVICE_PID_FILE = path.join(RUN_DIR, 'service.pid');

async function startService(): Promise<void> {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  // A run that was killed outright leaves its service serving; this socket is ours alone.
  const stale = Number(fs.existsSync(SERVICE_PID_FILE) ? fs.readFileSync(SERVICE_PID_FILE, 'utf8') : 0);
  if (stale > 0 && fs.existsSync(`/proc/${stale}/cmdline`) && fs.readFileSync(`/proc/${stale}/cmdline`, 'utf8').includes(SOCKET)) {
    killGroup(stale, 'SIGKILL');
  }
  fs.rmSync(SOCKET, { force: true });
  const log = fs.openSync(path.join(RUN_DIR, 'service.log'), 'w');
  // --time=0: it serves until this script stops it, however long a build is silent.
  servicePid = startBackground('podman', ['system', 'service', '--time=0', `unix://${SOCKET}`], podmanEnv, log);
  fs.closeSync(log);
  fs.writeFileSync(SERVICE_PID_FILE, String(servicePid));
  await until('podman system service to answer', 30_000, socketAnswers, 200);
}

async function stopService(): Promise<void> {
  if (servicePid === undefined) return;
  killGroup(servicePid, 'SIGTERM');
  const pid = servicePid;
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const gone = await until('podman system service to stop', 10_000, () => Promise.resolve(!alive()), 200).catch(() => false);
  if (!gone) killGroup(pid, 'SIGKILL');
  servicePid = undefined;
  fs.rmSync(SOCKET, { force: true });
  fs.rmSync(SERVICE_PID_FILE, { force: true });
}

type Project = { name: string; files: string[]; port: number };

function compose(p: Project, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  const files = p.files.flatMap((f) => ['-f', path.join(ROOT, f)]);
  // API_KEY unset whatever the caller's environment holds: the publisher sends no key (and an
  // empty key is a configuration error, so it is left out rather than emptied).
  const env: NodeJS.ProcessEnv = { ...podmanEnv, API_PORT: String(p.port) };
  delete env.API_KEY;
  delete env.READ_API_KEY;
  return run('docker-compose', ['-p', p.name, ...files, ...args], { timeoutMs, env, cwd: ROOT }).then((r) => {
    if (r.timedOut) throw new Error(`docker-compose ${args.join(' ')}: no end after ${secs(timeoutMs)}`);
    if (r.code !== 0) throw new Error(`docker-compose ${args.join(' ')}: exit ${r.code}\n${(r.stderr || r.stdout).trim().slice(-3000)}`);
    return r;
  });
}

/**
 * podman 4.3 runs healthchecks from systemd timers, and no systemd runs here: without this
 * pump a `service_healthy` condition never comes true and `up` waits forever.
 */
function pumpHealthchecks(project: string): () => Promise<void> {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const r = await run('podman', ['ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.ID}} {{.Status}}'], {
        timeoutMs: 15_000,
        env: podmanEnv,
      });
      const waiting = r.stdout.split('\n').filter((l) => /\((starting|unhealthy)\)/.test(l)).map((l) => l.split(' ')[0]!);
      await Promise.all(waiting.map((id) => run('podman', ['healthcheck', 'run', id], { timeoutMs: 15_000, env: podmanEnv })));
      await sleep(1000);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

async function containersOf(project: string, all = true): Promise<{ id: string; name: string }[]> {
  const r = await podman(['ps', ...(all ? ['-a'] : []), '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.ID}} {{.Names}}']);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [id, name] = l.split(' ');
      return { id: id!, name: name! };
    });
}

type Inspect = {
  Name: string;
  State: { Running: boolean; Pid: number; ExitCode: number; FinishedAt: string; StartedAt: string; Restarting: boolean };
  RestartCount: number;
  Config: { Labels: Record<string, string> };
};
async function inspect(id: string): Promise<Inspect> {
  return (JSON.parse((await podman(['inspect', '--type', 'container', id])).stdout) as Inspect[])[0]!;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

// ---------------------------------------------------------------------------------------
// The service's HTTP API, from outside

type Stats = { received: number; unique_processed: number; duplicate_dropped: number; pending: number; workers?: { live: number } };
type Ev = { topic: string; event_id: string; timestamp: string; source: string; payload: Record<string, unknown> };
const key = (e: { topic: string; event_id: string }) => `${e.topic}\u0000${e.event_id}`;

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as T };
}

async function stats(base: string): Promise<Stats> {
  const r = await getJson<Stats>(`${base}/stats`);
  if (r.status !== 200) throw new Error(`/stats answered ${r.status}`);
  return r.body;
}

/** 20,000 events by default, `copies` of them exact copies of others, in a fixed shuffled order. */
function workload(total: number, copies: number, tag: string): { events: Ev[]; unique: number } {
  let seed = 14;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const originals: Ev[] = [];
  for (let i = 0; i < total - copies; i++) {
    originals.push({
      topic: `ct-${i % 5}`,
      event_id: `${tag}-${i}`,
      timestamp: new Date(Date.UTC(2025, 9, 24) + i * 1000).toISOString(),
      source: 'containers-test',
      payload: { n: i, tag },
    });
  }
  const events = [...originals];
  for (let i = 0; i < copies; i++) events.push({ ...originals[Math.floor(rnd() * originals.length)]! });
  for (let i = events.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [events[i], events[j]] = [events[j]!, events[i]!];
  }
  return { events, unique: originals.length };
}

/**
 * Sends events in batches, retrying 503s and network errors (bounded). `ambiguous` counts
 * events of requests that got no answer: those may have been queued, and count as received.
 */
async function publish(base: string, events: Ev[], onAccepted?: (total: number) => void): Promise<{ ambiguous: number; ms: number }> {
  const t0 = performance.now();
  const batches: Ev[][] = [];
  // Batches of 250 from 8 senders: faster than three workers commit, so a backlog builds up
  // and every worker holds jobs while the stream lasts.
  for (let i = 0; i < events.length; i += 250) batches.push(events.slice(i, i + 250));
  let next = 0;
  let accepted = 0;
  let ambiguous = 0;
  const sender = async () => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      for (let attempt = 1; ; attempt++) {
        if (attempt > 40) throw new Error(`a batch was not accepted after 40 attempts`);
        let status = 0;
        let retryAfter = 0;
        try {
          const res = await fetch(`${base}/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ events: batch }),
            signal: AbortSignal.timeout(30_000),
          });
          status = res.status;
          retryAfter = Number(res.headers.get('retry-after') ?? 0);
          await res.arrayBuffer();
        } catch {
          ambiguous += batch.length;
        }
        if (status === 202) {
          accepted += batch.length;
          onAccepted?.(accepted);
          break;
        }
        if (status !== 0 && status !== 503 && status < 500) throw new Error(`POST /publish answered ${status}`);
        await sleep(Math.min(2000, retryAfter > 0 ? retryAfter * 1000 : 100 * attempt));
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));
  return { ambiguous, ms: performance.now() - t0 };
}

/** Every stored event, walking GET /events by its cursor. */
async function storedKeys(base: string): Promise<string[]> {
  const keys: string[] = [];
  let after: number | null = null;
  for (let page = 0; page < 1000; page++) {
    const q: string = after === null ? '' : `&after=${after}`;
    const r = await getJson<{ events: Ev[]; next_after: number | null }>(`${base}/events?limit=1000${q}`);
    if (r.status !== 200) throw new Error(`GET /events answered ${r.status}`);
    for (const e of r.body.events) keys.push(key(e));
    if (r.body.next_after === null || r.body.events.length === 0) return keys;
    after = r.body.next_after;
  }
  throw new Error('GET /events did not end within 1000 pages');
}

async function expectStoredOnce(base: string, events: Ev[]): Promise<number> {
  const keys = await storedKeys(base);
  const distinct = new Set(keys);
  if (distinct.size !== keys.length) throw new Error(`${keys.length - distinct.size} event(s) stored twice`);
  const missing = [...new Set(events.map(key))].filter((k) => !distinct.has(k));
  if (missing.length > 0) throw new Error(`${missing.length} event(s) never stored, e.g. ${missing[0]!.replace('\u0000', '/')}`);
  return keys.length;
}

async function drained(base: string, received: number, unique: number, timeoutMs = 240_000): Promise<Stats> {
  const s = await until(`the queue to drain (received ${received})`, timeoutMs, async () => {
    const s = await stats(base);
    return s.pending === 0 && s.received >= received && s.received === s.unique_processed + s.duplicate_dropped && s;
  }, 1000);
  expectEqual('unique_processed', s.unique_processed, unique);
  return s;
}

async function ready(base: string, workers: number, timeoutMs = 120_000): Promise<void> {
  await until(`/ready with ${workers} workers`, timeoutMs, async () => {
    const r = await getJson<{ workers?: unknown[] }>(`${base}/ready`).catch(() => undefined);
    return r?.status === 200 && (r.body.workers?.length ?? 0) >= workers;
  }, 500);
}

// ---------------------------------------------------------------------------------------
// The compose scenario: SQLite on the shared volume, or PostgreSQL

const images: { name: string; bytes: number; buildMs: number }[] = [];
const projects: Project[] = [];

async function buildImages(p: Project): Promise<boolean> {
  for (const service of ['api', 'worker']) {
    const ok = await check(`build Dockerfile.${service}`, async () => {
      const r = await compose(p, ['build', service], 1_800_000);
      const bytes = Number((await podman(['image', 'inspect', '--format', '{{.Size}}', `${p.name}_${service}`])).stdout.trim());
      images.push({ name: `Dockerfile.${service}`, bytes, buildMs: r.ms });
      return `${mb(bytes)} in ${secs(r.ms)}`;
    });
    if (!ok) return false;
  }
  return true;
}

async function up(p: Project, workers: number): Promise<number> {
  const t0 = performance.now();
  const stopPump = pumpHealthchecks(p.name);
  try {
    await compose(p, ['up', '-d', '--no-build', '--scale', `worker=${workers}`], 300_000);
  } finally {
    await stopPump();
  }
  await ready(`http://127.0.0.1:${p.port}`, workers);
  return performance.now() - t0;
}

/** The node process a worker container runs, under compose's `init: true` (catatonit). */
function nodeChildOf(pid: number): number {
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  // By cmdline: Node names its main thread "MainThread", and that is what comm shows.
  const node = children.find((c) => fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0')[0]?.endsWith('node'));
  if (node === undefined) throw new Error(`no node process under PID ${pid} (${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`);
  return node;
}

async function scenario(kind: 'sqlite' | 'postgres', p: Project): Promise<void> {
  const base = `http://127.0.0.1:${p.port}`;
  const label = `${kind}:`;
  const timings: string[] = [];

  const upOk = await check(`${label} compose up --scale worker=3`, async () => {
    const ms = await up(p, 3);
    timings.push(`up ${secs(ms)}`);
    return `ready with 3 workers ${secs(ms)} after up`;
  });
  if (!upOk) {
    const logs = await compose(p, ['logs', '--no-color', '--tail', '30'], 60_000).catch((e: Error) => ({ stdout: e.message }));
    console.log(logs.stdout);
    if (kind === 'postgres' && /SqliteError|SQLITE_/.test(logs.stdout)) {
      console.log('note  postgres: the image opened SQLite although DATABASE_URL was set: this build has no PostgreSQL store');
    }
    return;
  }

  await check(`${label} every image's healthcheck passes, and PID 1 is an init`, async () => {
    const seen: string[] = [];
    for (const c of await containersOf(p.name, false)) {
      await podman(['healthcheck', 'run', c.id], 30_000);
      seen.push(c.name.replace(`${p.name}_`, ''));
      const info = await inspect(c.id);
      const service = info.Config.Labels['com.docker.compose.service'];
      if (service === 'api' || service === 'worker') nodeChildOf(info.State.Pid);
    }
    return seen.sort().join(', ');
  });

  await check(`${label} Redis runs with a maxmemory and noeviction, so it refuses writes rather than drop jobs`, async () => {
    const redis = (await containersOf(p.name, false)).find((c) => c.name === `${p.name}_redis_1`);
    if (!redis) throw new Error(`no ${p.name}_redis_1`);
    const out = (await podman(['exec', redis.id, 'redis-cli', 'config', 'get', 'maxmemory*'])).stdout.trim().split('\n');
    const conf = Object.fromEntries(out.flatMap((v, i) => (i % 2 === 0 ? [[v, out[i + 1]]] : [])));
    expectEqual('maxmemory', conf.maxmemory, String(512 * 1024 * 1024));
    expectEqual('maxmemory-policy', conf['maxmemory-policy'], 'noeviction');
    return `maxmemory ${conf.maxmemory}`;
  });

  if (kind === 'postgres') {
    await check(`${label} API and workers keep nothing on local disk`, async () => {
      for (const c of await containersOf(p.name, false)) {
        const service = (await inspect(c.id)).Config.Labels['com.docker.compose.service'];
        if (service !== 'api' && service !== 'worker') continue;
        const files = (await podman(['exec', c.id, 'ls', '-A', '/data'])).stdout.trim();
        if (files) throw new Error(`${c.name} has ${files.split('\n').join(', ')} in /data: the store is not PostgreSQL`);
      }
    });
  }

  const { events, unique } = workload(20_000, 6_000, `${kind}-${Date.now()}`);
  let received = 0;
  await check(`${label} 20,000 events with 30% copies, one worker killed with SIGKILL mid-stream`, async () => {
    const victim = (await containersOf(p.name, false)).find((c) => c.name === `${p.name}_worker_1`);
    if (!victim) throw new Error(`no ${p.name}_worker_1`);
    const before = await inspect(victim.id);
    // The kill waits, from 6,000 events accepted on, for a backlog of at least 1,000
    // events, so that the victim most likely holds jobs when it dies; at 14,000 it kills
    // whatever the backlog.
    let accepted = 0;
    let publishing = true;
    const killer = (async () => {
      for (;;) {
        if (!publishing && accepted < 6000) throw new Error(`publishing ended after ${accepted} events, before the kill`);
        if (accepted >= 6000) {
          const pending = (await stats(base)).pending;
          if (pending >= 1000 || accepted >= 14_000 || !publishing) {
            process.kill(nodeChildOf(before.State.Pid), 'SIGKILL');
            return `killed after ${accepted} accepted, ${pending} pending`;
          }
        }
        await sleep(20);
      }
    })();
    killer.catch(() => undefined);
    const sent = await publish(base, events, (n) => (accepted = n)).finally(() => (publishing = false));
    const how = await killer;
    const t0 = performance.now();
    const s = await drained(base, 20_000, unique);
    received = s.received;
    // More than 20,000 only if a request got no answer after being queued, and then retried.
    if (sent.ambiguous === 0) expectEqual('received', s.received, 20_000);
    else if (s.received > 20_000 + sent.ambiguous) throw new Error(`received ${s.received} > 20,000 + ${sent.ambiguous} unanswered`);
    expectEqual('duplicate_dropped', s.duplicate_dropped, s.received - unique);
    const drainMs = performance.now() - t0;
    const after = await inspect(victim.id);
    const restarted = after.RestartCount > before.RestartCount || after.State.StartedAt !== before.State.StartedAt;
    // BullMQ's event stream says whether the victim died holding jobs: those were found
    // stalled and handed to another worker.
    const redis = (await containersOf(p.name, false)).find((c) => c.name === `${p.name}_redis_1`);
    const stream = redis ? (await podman(['exec', redis.id, 'redis-cli', 'XRANGE', 'bull:events:events', '-', '+'])).stdout : '';
    const stalled = stream.split('\n').filter((l) => l.trim() === 'stalled').length;
    timings.push(`publish ${secs(sent.ms)}`, `drain ${secs(drainMs)}`);
    return `${how}; ${stalled} stalled job(s) redelivered; published in ${secs(sent.ms)}, drained ${secs(drainMs)} later; received ${s.received} = ${s.unique_processed} unique + ${s.duplicate_dropped} copies; victim ${restarted ? 'restarted by its restart policy' : 'not restarted'}`;
  });

  await check(`${label} each stored event exactly once (GET /events)`, async () => `${await expectStoredOnce(base, events)} events`);

  await check(`${label} every container stops cleanly within its grace period on SIGTERM`, async () => {
    const running = await containersOf(p.name, false);
    const t0 = Date.now();
    const r = await compose(p, ['stop'], 180_000);
    timings.push(`stop ${secs(r.ms)}`);
    const out: string[] = [];
    let dependentsDone = t0;
    const infos = await Promise.all(running.map((c) => inspect(c.id)));
    for (const info of infos) {
      const service = info.Config.Labels['com.docker.compose.service'];
      if (service === 'api' || service === 'worker') dependentsDone = Math.max(dependentsDone, Date.parse(info.State.FinishedAt));
    }
    for (const info of infos) {
      const service = info.Config.Labels['com.docker.compose.service']!;
      // compose stops the API and workers first, then what they depend on.
      const from = service === 'api' || service === 'worker' ? t0 : dependentsDone;
      const ms = Date.parse(info.State.FinishedAt) - from;
      const grace = service === 'postgres' ? 30_000 : service === 'redis' ? 10_000 : 15_000;
      if (info.State.ExitCode !== 0) throw new Error(`${info.Name} exited with ${info.State.ExitCode} (137: killed when its grace period ran out)`);
      if (ms > grace) throw new Error(`${info.Name} took ${secs(ms)} to stop (grace ${secs(grace)})`);
      out.push(`${info.Name.replace(`${p.name}_`, '')} ${secs(Math.max(0, ms))}`);
    }
    return out.join(', ');
  });

  await check(`${label} down and up again: every count and event survived on the volumes`, async () => {
    const before = await compose(p, ['down'], 180_000);
    const ms = await up(p, 3);
    timings.push(`down ${secs(before.ms)}`, `up again ${secs(ms)}`);
    const s = await stats(base);
    expectEqual('counts after down and up', [s.received, s.unique_processed, s.duplicate_dropped, s.pending], [received, unique, received - unique, 0]);
    const n = await expectStoredOnce(base, events);
    return `${n} events and counts intact; up again in ${secs(ms)}`;
  });

  await check(`${label} old events sent again after the restart are all dropped`, async () => {
    const again = events.slice(0, 1000);
    await publish(base, again);
    const s = await drained(base, received + 1000, unique);
    expectEqual('duplicate_dropped', s.duplicate_dropped, received + 1000 - unique);
    return `received ${s.received}, unique still ${s.unique_processed}`;
  });

  report.push(`${kind}: ${timings.join(', ')}`);
  await quietly(compose(p, ['down', '-v', '-t', '15'], 180_000));
}

// ---------------------------------------------------------------------------------------
// testcontainers: the Redis-backed integration tests with Redis in a container

// Every test that kills, stops or restarts Redis, with the suites around them. The browser
// suite needs Debian's chromium (CI installs it); without it that suite would only skip.
const MOCHA_FILES = [
  'test/integration/pipeline.test.ts',
  'test/integration/enqueue.test.ts',
  'test/integration/metrics.test.ts',
  'test/integration/publish-cli.test.ts',
  ...(fs.existsSync('/usr/bin/chromium') ? ['test/browser/dashboard.test.ts'] : []),
];

async function testcontainers(): Promise<void> {
  await check('testcontainers: Redis-backed integration tests through podman', async () => {
    const build = await run('npm', ['run', 'build', '--silent'], { timeoutMs: 300_000, cwd: ROOT });
    if (build.code !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
    const mocha = path.join(ROOT, 'node_modules/mocha/bin/mocha.js');
    const r = await run(process.execPath, [mocha, ...MOCHA_FILES], {
      timeoutMs: 1_500_000,
      cwd: ROOT,
      env: {
        ...podmanEnv,
        TEST_REDIS: 'container',
        // Ryuk, testcontainers' reaper, is an image from a registry this machine cannot
        // reach; this script removes what is left instead.
        TESTCONTAINERS_RYUK_DISABLED: 'true',
        // testcontainers sees /.dockerenv on this machine and would reach published ports
        // through the bridge's gateway; the service publishes them on loopback too.
        TESTCONTAINERS_HOST_OVERRIDE: '127.0.0.1',
      },
      onLine: (l) => console.log(`  mocha | ${l}`),
    });
    if (r.timedOut) throw new Error('mocha did not end in 25 minutes');
    const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(r.stdout)?.[1] ?? 0);
    const summary = `${count('passing')} passing, ${count('failing')} failing, ${count('pending')} pending in ${secs(r.ms)}`;
    report.push(`testcontainers: ${MOCHA_FILES.length} files, ${summary}`);
    if (r.code !== 0) throw new Error(summary);
    // A skipped test here is one that does not work with Redis in a container.
    if (count('pending') > 0) throw new Error(`${summary}: none may be skipped`);
    if (count('passing') === 0) throw new Error(summary);
    return summary;
  });
  await check('testcontainers: no container left behind', async () => {
    const left = (await podman(['ps', '-a', '-q', '--filter', 'label=org.testcontainers=true'])).stdout.trim();
    if (left) throw new Error(`left: ${left.split('\n').join(' ')}`);
  });
}

// ---------------------------------------------------------------------------------------
// Cleanup: every container, volume, network, image and iptables chain this run made

type Chains = Map<string, Set<string>>;
const TABLES = ['filter', 'nat', 'mangle', 'raw'];

async function chains(tool: string): Promise<Chains> {
  const out: Chains = new Map();
  for (const table of TABLES) {
    const r = await run(tool, ['-t', table, '-S'], { timeoutMs: 30_000 });
    const set = new Set<string>();
    for (const line of r.stdout.split('\n')) {
      const m = /^-N (\S+)/.exec(line);
      if (m) set.add(m[1]!);
    }
    out.set(table, set);
  }
  return out;
}

let chainsBefore: Map<string, Chains> | undefined;
let ipForwardBefore: string | undefined;

/** Removes netavark's chains that were not there when this run began, and the jumps to them. */
async function removeNewChains(): Promise<string[]> {
  const removed: string[] = [];
  if (!chainsBefore) return removed;
  for (const [tool, before] of chainsBefore) {
    const now = await chains(tool);
    for (const table of TABLES) {
      const fresh = [...(now.get(table) ?? [])].filter((c) => c.startsWith('NETAVARK') && !before.get(table)?.has(c));
      if (fresh.length === 0) continue;
      const rules = (await run(tool, ['-t', table, '-S'], { timeoutMs: 30_000 })).stdout.split('\n');
      for (const rule of rules) {
        const m = /^-A (\S+) .*-j (\S+)/.exec(rule);
        if (m && fresh.includes(m[2]!) && !fresh.includes(m[1]!)) {
          // -S prints rules quoted as a shell would take them.
          await run('sh', ['-c', `${tool} -t ${table} ${rule.replace(/^-A /, '-D ')}`], { timeoutMs: 30_000 });
        }
      }
      for (const c of fresh) await run(tool, ['-t', table, '-F', c], { timeoutMs: 30_000 });
      for (const c of fresh) {
        await run(tool, ['-t', table, '-X', c], { timeoutMs: 30_000 });
        removed.push(`${tool}/${table}/${c}`);
      }
    }
  }
  return removed;
}

// Kept until a cleanup has succeeded: a run killed before its cleanup leaves its chains,
// and the next run must still count them as made by this test.
const BASELINE = path.join(CACHE, 'host-baseline.json');

async function snapshotHost(): Promise<void> {
  if (fs.existsSync(BASELINE)) {
    const saved = JSON.parse(fs.readFileSync(BASELINE, 'utf8')) as { chains: Record<string, Record<string, string[]>>; ipForward: string };
    chainsBefore = new Map(Object.entries(saved.chains).map(([tool, t]) => [tool, new Map(Object.entries(t).map(([k, v]) => [k, new Set(v)]))]));
    ipForwardBefore = saved.ipForward;
    return;
  }
  chainsBefore = new Map([
    ['iptables', await chains('iptables')],
    ['ip6tables', await chains('ip6tables')],
  ]);
  ipForwardBefore = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  const plain = Object.fromEntries([...chainsBefore].map(([tool, t]) => [tool, Object.fromEntries([...t].map(([k, v]) => [k, [...v]]))]));
  fs.writeFileSync(BASELINE, JSON.stringify({ chains: plain, ipForward: ipForwardBefore }));
}

const PROJECTS = ['eacisqlite', 'eacipg'];

/** Removes whatever this script's projects and testcontainers left, in podman's own storage. */
async function removeLeftovers(): Promise<void> {
  for (const name of PROJECTS) {
    const ids = (await podman(['ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${name}`]).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    if (ids.length) await quietly(podman(['rm', '-f', '-t', '5', ...ids], 120_000));
    const vols = (await podman(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${name}`]).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    if (vols.length) await quietly(podman(['volume', 'rm', '-f', ...vols]));
    await quietly(podman(['network', 'rm', '-f', `${name}_default`]));
    for (const s of ['api', 'worker']) await quietly(podman(['rmi', '-f', `${name}_${s}`]));
  }
  const tc = (await podman(['ps', '-a', '-q', '--filter', 'label=org.testcontainers=true']).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
  if (tc.length) await quietly(podman(['rm', '-f', '-v', '-t', '0', ...tc], 120_000));
  // The build stages' images and any image left untagged; the tagged stand-ins stay cached.
  await quietly(podman(['image', 'prune', '-f'], 300_000));
}

/**
 * Processes of this run's podman still alive: conmon stays 300 s after each exec session
 * (testcontainers' port checks) to hand out its exit code, long after the container is gone.
 * Recognised by this run's own storage and run directories in their command lines.
 */
function podmanProcesses(): number[] {
  const mine = [path.join(CACHE, 'podman', 'storage'), RUN_DIR];
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (mine.some((m) => cmdline.includes(m))) pids.push(Number(entry));
  }
  return pids;
}

async function cleanup(): Promise<void> {
  for (const p of projects) await quietly(compose(p, ['down', '-v', '-t', '5', '--remove-orphans'], 180_000));
  await removeLeftovers();
  await stopService();
  for (const pid of podmanProcesses()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  await check('cleanup: no container, volume, network, project image or process left; iptables as before', async () => {
    const removed = await removeNewChains();
    if (ipForwardBefore !== undefined && fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== ipForwardBefore) {
      fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', ipForwardBefore);
    }
    const containers = (await podman(['ps', '-a', '-q'])).stdout.trim();
    const volumes = (await podman(['volume', 'ls', '-q'])).stdout.trim();
    const networks = (await podman(['network', 'ls', '--format', '{{.Name}}'])).stdout.trim().split('\n').filter((n) => n !== 'podman');
    const imgs = (await podman(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.trim().split('\n').filter(Boolean);
    const foreign = imgs.filter((i) => !/^(docker\.io\/library\/(node|redis|postgres)|localhost\/event-aggregator-ci\/bookworm):/.test(i));
    const left = [
      containers && `containers ${containers.split('\n').join(' ')}`,
      volumes && `volumes ${volumes.split('\n').join(' ')}`,
      networks.length > 0 && `networks ${networks.join(' ')}`,
      foreign.length > 0 && `images ${foreign.join(' ')}`,
    ].filter(Boolean);
    await sleep(500);
    const procs = podmanProcesses();
    if (procs.length) left.push(`processes ${procs.join(' ')}`);
    if (left.length) throw new Error(`left: ${left.join('; ')}`);
    const after = await chains('iptables');
    const extra = TABLES.flatMap((t) => [...(after.get(t) ?? [])].filter((c) => c.startsWith('NETAVARK') && !chainsBefore?.get('iptables')?.get(t)?.has(c)));
    if (extra.length) throw new Error(`iptables chains left: ${extra.join(' ')}`);
    fs.rmSync(BASELINE, { force: true });
    return `removed ${removed.length} iptables chain(s); stand-ins kept: ${imgs.length}`;
  });
}

// ---------------------------------------------------------------------------------------

function finish(code: number): never {
  console.log('');
  console.log('containers: report');
  for (const line of report) console.log(`  ${line}`);
  console.log(`  total ${secs(performance.now() - started)}`);
  console.log(`containers: ${passed} passed, ${failed} failed`);
  process.exit(code);
}

async function main(): Promise<void> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    fail('setup', 'needs Linux and root: rootful podman, iptables and apt');
    return;
  }
  const prepared = await run('bash', [path.join(import.meta.dirname, 'prepare.sh')], {
    timeoutMs: 1_800_000,
    env: { ...process.env, EA_CI_CACHE: CACHE, EA_CI_RUN: RUN_DIR },
    onLine: (l) => {
      if (l.startsWith('prepare:')) console.log(l);
    },
  });
  if (prepared.code !== 0) {
    fail('prepare podman and the stand-in base images', prepared.timedOut ? 'no end in 30 minutes' : prepared.stderr.slice(-3000));
    return;
  }
  for (const line of prepared.stdout.split('--- env')[1]?.split('\n') ?? []) {
    const m = /^export (\w+)=(.*)$/.exec(line);
    if (m) podmanEnv[m[1]!] = m[2]!;
  }
  podmanEnv = { ...podmanEnv, DOCKER_HOST: `unix://${SOCKET}` };
  pass('prepare podman and the stand-in base images', `${secs(prepared.ms)} (node ${podmanEnv.EA_STANDIN_NODE})`);
  report.push(`prepare (install, stand-ins): ${secs(prepared.ms)}`);

  await snapshotHost();
  await removeLeftovers();
  if (!(await check('podman system service answers on its socket', async () => startService()))) return;

  const sqlite: Project = { name: 'eacisqlite', files: ['docker-compose.yml'], port: await freePort() };
  projects.push(sqlite);
  if (await buildImages(sqlite)) {
    report.push(`images: ${images.map((i) => `${i.name} ${mb(i.bytes)} built in ${secs(i.buildMs)}`).join(', ')}`);
    await scenario('sqlite', sqlite);

    const pg: Project = { name: 'eacipg', files: ['docker-compose.yml', 'docker-compose.postgres.yml'], port: await freePort() };
    if (process.env.CONTAINERS_POSTGRES !== '0') {
      projects.push(pg);
      // The same images under the names compose gives them in this project: no second build.
      for (const s of ['api', 'worker']) await podman(['tag', `${sqlite.name}_${s}`, `${pg.name}_${s}`]);
      await scenario('postgres', pg);
    } else {
      console.log('skip  postgres: the PostgreSQL scenario (docker-compose.postgres.yml) is off: CONTAINERS_POSTGRES=0');
      report.push('postgres: skipped (CONTAINERS_POSTGRES=0)');
    }
  }

  if (process.env.CONTAINERS_SKIP_MOCHA !== '1') await testcontainers();
}

const watchdog = setTimeout(() => {
  fail('overall', `no end within ${secs(OVERALL_MS)}`);
  // Cleanup has its own bounded steps; this second timer ends the process if it hangs too.
  setTimeout(() => {
    killAll();
    finish(1);
  }, 300_000).unref();
  killAll();
  void cleanup().finally(() => finish(1));
}, OVERALL_MS);

process.on('unhandledRejection', (err) => fail('unexpected', err instanceof Error ? (err.stack ?? err.message) : String(err)));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    fail('interrupted', signal);
    clearTimeout(watchdog);
    killAll();
    void cleanup().finally(() => finish(1));
  });
}

try {
  await main();
} catch (err) {
  fail('unexpected', err instanceof Error ? (err.stack ?? err.message) : String(err));
}
clearTimeout(watchdog);
await cleanup().catch((err: unknown) => fail('cleanup', String(err)));
finish(failed === 0 && passed > 0 ? 0 : 1);
