// What every main.ts does with its process, in one place: read the configuration or exit
// naming the bad variables, refuse a Redis that would lose jobs, and stop on a signal.
// Only main.ts files import this module: library code never touches the process.
import type { Redis } from 'ioredis';
import { ConfigError, loadConfig, type Config } from './config.js';
import type { Logger } from './log.js';
import { unsafeRedisSettings } from './queue.js';

export function configOrExit(name: string): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`${name}: ${err.message}`);
    process.exit(1);
  }
}

/** Each time the connection becomes ready, checks Redis' settings; exits if they would lose jobs. */
export function exitOnUnsafeRedis(redis: Redis, log: Logger, name: string): void {
  redis.on('ready', () => {
    void unsafeRedisSettings(redis).then((problems) => {
      if (problems.length === 0) return;
      for (const problem of problems) log.fatal(problem);
      console.error(`${name}: refusing to run: ${problems.join('; ')}`);
      process.exit(1);
    });
  });
}

/** Says once that Redis went away (and what that means for this process), and once that it came back. */
export function logRedisOutages(redis: Redis, log: Logger, meaning: string): void {
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) log.warn({ err: err.message }, `redis unreachable; ${meaning}`);
    down = true;
  });
  redis.on('ready', () => {
    if (down) log.info('redis reachable again');
    down = false;
  });
}

/** SIGTERM or SIGINT runs the shutdown once, then exits 0 when it was clean, 1 otherwise. */
export function stopOnSignals(log: Logger, shutdown: () => Promise<boolean>): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      log.info({ signal }, 'stopping');
      void shutdown().then((clean) => {
        log.info({ clean }, 'stopped');
        process.exit(clean ? 0 : 1);
      });
    });
  }
}
