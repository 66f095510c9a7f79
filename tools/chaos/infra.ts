// What the service runs on in a chaos run, and the faults made to it: Redis (killed and
// started again), with --store postgres a PostgreSQL server of the run's own (SIGKILLed, its
// sessions terminated), and a TCP proxy on each link to them (reset, cut, blackholed). The
// processes reach Redis and PostgreSQL only through the proxies; the run's own checks go
// direct, so a fault on a link is one the service meets and the audit does not.
import path from 'node:path';
import { startRedisServer, type RedisServer } from '../../scripts/redis-server.js';
import type { StoreKind } from '../harness/cluster.js';
import { startOwnedPostgres, type OwnedPostgres } from '../harness/owned-postgres.js';
import { TcpProxy } from '../harness/tcp-proxy.js';
import { pause, type Random } from './random.js';

export type LinkName = 'redis' | 'pg';

export type Infra = {
  redis: RedisServer;
  /** Owned by the run, with store postgres. */
  pg: OwnedPostgres | undefined;
  links: Partial<Record<LinkName, TcpProxy>>;
  /** What the processes are given: the proxies' URLs. */
  redisUrl: string;
  databaseUrl: string | undefined;
};

const DATABASE = 'chaos';

async function proxyTo(url: string): Promise<TcpProxy> {
  const proxy = TcpProxy.forUrl(url);
  await proxy.start();
  return proxy;
}

/** Starts Redis (and PostgreSQL) and a proxy in front of each; `into` sees each part as it starts, for the cleanup. */
export async function startInfra(dir: string, store: StoreKind, appendfsync: 'everysec' | 'always', into: Partial<Infra>): Promise<Infra> {
  const redis = (into.redis = await startRedisServer({ dir: path.join(dir, 'redis'), appendfsync, logFile: path.join(dir, 'redis.log') }));
  const links: Infra['links'] = (into.links = {});
  links.redis = await proxyTo(redis.url);
  let databaseUrl: string | undefined;
  if (store === 'postgres') {
    const pg = (into.pg = await startOwnedPostgres());
    await pg.admin(`CREATE DATABASE ${DATABASE}`);
    links.pg = await proxyTo(pg.url(DATABASE));
    databaseUrl = links.pg.url(pg.url(DATABASE));
  }
  return { redis, pg: into.pg, links, redisUrl: links.redis.url(redis.url), databaseUrl };
}

/** Stops whatever of `infra` was started; never throws (the cleanup of a failed run). */
export async function stopInfra(infra: Partial<Infra>): Promise<void> {
  for (const link of Object.values(infra.links ?? {})) await link.close().catch(() => undefined);
  await infra.redis?.kill().catch(() => undefined);
  await infra.pg?.destroy().catch(() => undefined);
}

/** SIGKILL of the postmaster and its backends, away 100 to 1500 ms, then started again (crash recovery). */
export async function pgKill(pg: OwnedPostgres, random: Random): Promise<string> {
  await pg.kill();
  await pause(random.between(100, 1500));
  await pg.start();
  return 'pg-kill';
}

/** pg_terminate_backend of every client session but the one asking: the service's pools lose every connection at once. */
export async function pgTerminate(pg: OwnedPostgres): Promise<string> {
  const r = await pg.admin<{ n: string }>(
    "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return `pg-terminate (${r.rows[0]?.n ?? 0} sessions)`;
}

/** Every connection through the link reset at once (RST); new ones are let through. */
export function linkReset(links: Infra['links'], name: LinkName): string {
  links[name]!.reset();
  return `link-reset ${name}`;
}

/**
 * The link down for 1 to 4 s, as a refusal (connections reset, new ones refused: a host
 * gone) or as a blackhole (nothing passes, nothing is closed: a dead route; what was sent
 * meanwhile arrives late, in order), then up again.
 */
export async function linkCut(links: Infra['links'], name: LinkName, random: Random): Promise<string> {
  const link = links[name]!;
  const blackhole = random.next() < 0.5;
  const ms = random.between(1000, 4000);
  if (blackhole) link.hold();
  else link.cut();
  await pause(ms);
  if (blackhole) link.release();
  else link.heal();
  return `link-cut ${name} ${blackhole ? 'blackhole' : 'refused'} ${(ms / 1000).toFixed(1)} s`;
}
