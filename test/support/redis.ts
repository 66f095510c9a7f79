// A real Redis for tests: testcontainers where a container runtime answers, else a private
// redis-server from PATH on a free port. Never a mock.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedisServer } from '../../scripts/redis-server.js';

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

async function containerRuntimeAnswers(): Promise<boolean> {
  if (process.env.TESTCONTAINERS_DISABLED === '1') return false;
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

async function fromContainer(): Promise<TestRedis> {
  const { GenericContainer } = await import('testcontainers');
  const container = await new GenericContainer('redis:7-alpine')
    .withCommand(['redis-server', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction'])
    .withExposedPorts(6379)
    .start();
  const url = `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
  return {
    url,
    kind: 'container',
    // A container restarts in one step; kill() does it with no grace, start() is then a no-op.
    kill: async () => {
      await container.restart({ timeout: 0 });
      if (`redis://${container.getHost()}:${container.getMappedPort(6379)}` !== url) {
        throw new Error('the container came back on another port');
      }
    },
    term: async () => {
      await container.restart();
    },
    start: () => Promise.resolve(),
    stop: async () => {
      await container.stop();
    },
  };
}

let cachedKind: 'container' | 'redis-server' | undefined;

export async function startTestRedis(): Promise<TestRedis> {
  cachedKind ??= (await containerRuntimeAnswers()) ? 'container' : 'redis-server';
  if (cachedKind === 'container') return fromContainer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-redis-'));
  const server = await startRedisServer({ dir, logFile: path.join(dir, 'redis.log') });
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
