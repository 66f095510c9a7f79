// `npm start`: the whole service on one machine, the API plus one worker, and a private
// Redis when REDIS_URL is unset. The same processes docker-compose runs, minus containers.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../shared/config.js';
import { listenNotice } from './listen-notice.js';
import { findOnPath, startRedisServer, type RedisServer } from './redis-server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const say = (msg: string) => console.error(`start: ${msg}`);

const config = (() => {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    say(err.message);
    process.exit(1);
  }
})();

let redis: RedisServer | undefined;
let redisUrl = config.redisUrl;
if (!process.env.REDIS_URL) {
  if (findOnPath('redis-server') === undefined) {
    say(
      [
        'Redis is needed and none was given.',
        '  - either set REDIS_URL to a Redis you run (maxmemory-policy noeviction, appendonly yes),',
        '    e.g. REDIS_URL=redis://127.0.0.1:6379 npm start',
        '  - or install redis-server so that `npm start` runs a private one:',
        '    apt-get install redis-server   (Debian/Ubuntu)   |   brew install redis   (macOS)',
        '  - or run everything in containers: docker compose up --build',
      ].join('\n'),
    );
    process.exit(1);
  }
  const dir = path.join(config.dataDir, 'redis');
  // Out of the terminal's process group: Ctrl-C reaches the API and the worker, and Redis is
  // stopped by stop() only once they have (a worker closing needs it to hand back its jobs).
  redis = await startRedisServer({ dir, logFile: path.join(dir, 'redis.log'), detached: true });
  redisUrl = redis.url;
  say(`private redis-server at ${redisUrl} (pid ${redis.pid()}, append-only file in ${dir})`);
}

const children: ChildProcess[] = [];
let stopping = false;

function run(name: string, script: string): ChildProcess {
  const child = spawn(process.execPath, [path.join(here, script)], {
    env: { ...process.env, REDIS_URL: redisUrl },
    stdio: 'inherit',
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      say(`${name} exited (${signal ?? `code ${code}`}); stopping everything`);
      void stop(1);
    }
  });
  children.push(child);
  return child;
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
  await redis?.stop();
  process.exit(code);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(0));

/** More deaths than this within RESTART_WINDOW_MS is a Redis that cannot run here: stop. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

/**
 * The private Redis is watched like the API and the worker, but a dead Redis is restarted
 * (same port, same append-only file, so nothing acknowledged is lost) rather than taking
 * everything down: the API and the worker reconnect by themselves.
 */
function watchRedis(server: RedisServer, logFile: string): void {
  const restarts: number[] = [];
  const watch = () =>
    void server.exited().then(async ({ code, signal }) => {
      if (stopping) return;
      const now = Date.now();
      while (restarts.length > 0 && now - restarts[0]! > RESTART_WINDOW_MS) restarts.shift();
      if (restarts.length >= MAX_RESTARTS) {
        say(`private redis-server exited (${signal ?? `code ${code}`}) for the ${MAX_RESTARTS + 1}th time within a minute; stopping everything (see ${logFile})`);
        void stop(1);
        return;
      }
      restarts.push(now);
      say(`private redis-server exited (${signal ?? `code ${code}`}); restarting it on the same port and append-only file`);
      try {
        await server.start();
      } catch (err) {
        say(`cannot restart redis-server: ${err instanceof Error ? err.message : String(err)}; stopping everything (see ${logFile})`);
        void stop(1);
        return;
      }
      if (stopping) return;
      say(`private redis-server is back (pid ${server.pid()}); the API and the worker reconnect by themselves`);
      watch();
    });
  watch();
}

run('api', '../services/api/main.js');
run('worker', '../services/worker/main.js');
if (redis !== undefined) watchRedis(redis, path.join(config.dataDir, 'redis', 'redis.log'));
for (const line of listenNotice(config)) say(line);
