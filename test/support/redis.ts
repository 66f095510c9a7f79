// A real Redis for tests: testcontainers where a container runtime answers, else a private
// redis-server from PATH on a free port (TEST_REDIS=container|redis-server forces one). Never
// a mock. Both kinds can be killed, stopped and started again on the same port.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, startRedisServer } from '../../scripts/redis-server.js';

export type TestRedis = {
  url: string;
  kind: 'container' | 'redis-server';
  /** SIGKILL Redis; `start()` brings it back on the same port with its append-only file. */
  kill(): Promise<void>;
  /** SIGTERM Redis, keeping its data; `start()` brings it back. */
  term(): Promise<void>;
  start(): Promise<void>;
  /** Stops Redis for good and removes its data. */
  stop(): Promise<void>;
};

// --- container runtime (issue 14): Docker, else podman's Docker-compatible socket --------
// TEST_REDIS=container or TEST_REDIS=redis-server forces one kind (a forced container with no
// runtime is an error, not a silent fallback); unset, a runtime that answers wins.
const PODMAN_SOCKET = '/run/podman/podman.sock';
// The image docker-compose.yml runs, so tests and compose need one image between them.
const REDIS_IMAGE = 'redis:7-bookworm';

function forcedKind(): 'container' | 'redis-server' | undefined {
  const v = process.env.TEST_REDIS;
  if (v === undefined || v === '') return undefined;
  if (v === 'container' || v === 'redis-server') return v;
  throw new Error(`TEST_REDIS must be "container" or "redis-server", not "${v}"`);
}

/** True when an engine answers GET /_ping on this unix socket within 2 s. */
function engineAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function containerRuntimeAnswers(): Promise<boolean> {
  if (process.env.TESTCONTAINERS_DISABLED === '1') return false;
  // testcontainers looks for Docker's socket only. Rootful podman serves the same API on its
  // own socket (`podman system service`); it must be chosen before testcontainers first
  // reads DOCKER_HOST, which it does once per process.
  if (!process.env.DOCKER_HOST && !(await engineAnswers('/var/run/docker.sock')) && (await engineAnswers(PODMAN_SOCKET))) {
    process.env.DOCKER_HOST = `unix://${PODMAN_SOCKET}`;
    // A local socket publishes ports on this host's loopback. Left to itself, testcontainers
    // takes a /.dockerenv (which this machine has) to mean it runs inside a container, and
    // goes through the bridge's gateway address instead.
    process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';
  }
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no answer')), 5000)),
    ]);
    return true;
  } catch {
    return false;
  }
}

/** True once Redis answers PING with PONG (not LOADING while it replays its file). */
function pong(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

async function fromContainer(): Promise<TestRedis> {
  const { GenericContainer, getContainerRuntimeClient } = await import('testcontainers');
  // The host port is pinned, not left to the runtime: a container that is stopped and
  // started again keeps its port binding, so the URL every client holds stays valid. A port
  // taken between freePort() and the start is retried with another.
  let started;
  let hostPort = 0;
  for (let attempt = 1; ; attempt++) {
    hostPort = await freePort();
    try {
      started = await new GenericContainer(REDIS_IMAGE)
        .withCommand(['redis-server', '--appendonly', 'yes', '--appendfsync', 'always', '--maxmemory-policy', 'noeviction'])
        .withExposedPorts({ container: 6379, host: hostPort })
        .start();
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  const host = started.getHost();
  const url = `redis://${host}:${hostPort}`;
  const container = (await getContainerRuntimeClient()).container.getById(started.getId());
  const running = async () => (await container.inspect()).State.Running;
  return {
    url,
    kind: 'container',
    kill: async () => {
      if (!(await running())) return;
      await container.kill({ signal: 'SIGKILL' });
      await container.wait();
    },
    term: async () => {
      if (await running()) await container.stop({ t: 10 });
    },
    start: async () => {
      if (!(await running())) await container.start();
      const bound = (await container.inspect()).NetworkSettings.Ports['6379/tcp']?.[0]?.HostPort;
      if (bound !== String(hostPort)) throw new Error(`the Redis container came back on host port ${bound}, not ${hostPort}`);
      const deadline = Date.now() + 30_000;
      while (!(await pong(host, hostPort))) {
        if (Date.now() > deadline) throw new Error(`the Redis container on port ${hostPort} did not answer within 30 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: async () => {
      await container.remove({ force: true, v: true });
    },
  };
}
// --- end of the container runtime part -----------------------------------------------

let cachedKind: 'container' | 'redis-server' | undefined;

export async function startTestRedis(): Promise<TestRedis> {
  if (cachedKind === undefined) {
    const forced = forcedKind();
    const answers = forced === 'redis-server' ? false : await containerRuntimeAnswers();
    if (forced === 'container' && !answers) {
      throw new Error('TEST_REDIS=container, but no container runtime answers (Docker, or podman at ' + PODMAN_SOCKET + ')');
    }
    cachedKind = forced ?? (answers ? 'container' : 'redis-server');
  }
  if (cachedKind === 'container') return fromContainer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-redis-'));
  // appendfsync always: the tests kill Redis and then count every acknowledged event. With
  // everysec, Redis postpones its AOF write for up to 2 s while a background fsync is slow
  // (a busy disk, as on a loaded CI machine), and a SIGKILL then loses writes it had already
  // answered: what these tests check is the pipeline, not that window (README, Guarantees).
  const server = await startRedisServer({ dir, logFile: path.join(dir, 'redis.log'), appendfsync: 'always' });
  return {
    url: server.url,
    kind: 'redis-server',
    kill: () => server.kill(),
    term: () => server.stop(),
    start: () => server.start(),
    stop: async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
