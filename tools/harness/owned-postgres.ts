// A PostgreSQL server that a test or the chaos run owns: made with Debian's initdb into a
// temporary folder and run with pg_ctl on a free port, so its owner can stop it, SIGKILL it
// and start it again mid-load (the shared server on 5432 must never be treated so). About
// 1.5 s to make.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../scripts/redis-server.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

export type OwnedPostgres = {
  port: number;
  dir: string;
  /** The URL of a database on this server (`postgres` unless named). */
  url(database?: string): string;
  start(): Promise<void>;
  /** A fast shutdown: sessions are ended, the server exits cleanly. */
  stop(): Promise<void>;
  /** SIGKILL the postmaster and its backends, as a crash of the host's database would. */
  kill(): Promise<void>;
  /** Runs statements on the `postgres` database (CREATE/DROP DATABASE, pg_terminate_backend). */
  admin<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<T>>;
  /** Stops the server for good and removes its folder. */
  destroy(): Promise<void>;
};

/** The newest PostgreSQL binaries Debian installed, or undefined. */
export function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!fs.existsSync(base)) return undefined;
  const versions = fs
    .readdirSync(base)
    .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : path.join(base, versions[0], 'bin');
}

function asPostgres(bin: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('runuser', ['-u', 'postgres', '--', bin, ...args], { timeout: 60_000 });
}

export async function startOwnedPostgres(): Promise<OwnedPostgres> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-pg-'));
  const { uid, gid } = fs.statSync('/var/lib/postgresql');
  fs.chownSync(dir, uid, gid);
  const data = path.join(dir, 'data');
  await asPostgres(path.join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const pgCtl = (args: string[]) => asPostgres(path.join(bin, 'pg_ctl'), ['-D', data, ...args]);

  async function admin<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<T>> {
    const client = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await client.query<T>(sql, params);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  function postmasterPid(): number | undefined {
    try {
      return Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  }

  /** The postmaster's children (its backends and helpers), by their parent's pid. */
  function childrenOf(pid: number): number[] {
    const out: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) out.push(Number(entry));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  /** Running: a zombie (killed, not yet reaped by whoever adopted it) counts as gone. */
  const alive = (pid: number) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };

  const server: OwnedPostgres = {
    port,
    dir,
    url,
    admin,
    async start() {
      // -w: returns once the server accepts connections.
      await pgCtl(['-o', options, '-l', path.join(dir, 'server.log'), '-w', '-t', '30', 'start']);
    },
    async stop() {
      await pgCtl(['-m', 'fast', '-w', 'stop']).catch(() => undefined);
    },
    async kill() {
      const pid = postmasterPid();
      if (pid === undefined || !alive(pid)) return;
      const children = childrenOf(pid);
      for (const p of [pid, ...children]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await waitFor(() => [pid, ...children].every((p) => !alive(p)), { what: 'PostgreSQL processes gone', timeoutMs: 10_000 });
      // A killed postmaster not yet reaped by whoever adopted it still answers kill(pid, 0),
      // and a new one would take it for a server still running: its lock file goes with it.
      fs.rmSync(path.join(data, 'postmaster.pid'), { force: true });
      fs.rmSync(path.join(dir, `.s.PGSQL.${port}.lock`), { force: true });
    },
    async destroy() {
      await pgCtl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
