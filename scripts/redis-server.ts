// A private redis-server from PATH: what `npm start` runs when REDIS_URL is unset, and what
// tests, the benchmark and the chaos run use when no container runtime answers.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

type RedisExit = { code: number | null; signal: NodeJS.Signals | null };

export type RedisServer = {
  url: string;
  port: number;
  dir: string;
  pid(): number | undefined;
  /** Resolves when the running process exits, however it ends. */
  exited(): Promise<RedisExit>;
  /** SIGKILL: what a crash looks like; the append-only file keeps what was written. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory, replaying the append-only file. */
  start(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
};

type RedisServerOptions = {
  dir: string;
  port?: number;
  /** everysec (Redis' default) or always; see README, "Guarantees". */
  appendfsync?: 'everysec' | 'always';
  logFile?: string;
  /**
   * In a process group of its own: Ctrl-C in a terminal signals the whole foreground group,
   * and Redis must outlive the processes that still talk to it while they stop.
   */
  detached?: boolean;
};

export function findOnPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, binary);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True once the server answers PING with PONG (not LOADING). */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
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

export async function startRedisServer(opts: RedisServerOptions): Promise<RedisServer> {
  const binary = findOnPath('redis-server');
  if (binary === undefined) throw new Error('redis-server is not on PATH');
  fs.mkdirSync(opts.dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', path.resolve(opts.dir),
    '--appendonly', 'yes',
    '--appendfsync', opts.appendfsync ?? 'everysec',
    '--save', '',
    '--maxmemory-policy', 'noeviction',
    '--daemonize', 'no',
    '--logfile', opts.logFile ? path.resolve(opts.logFile) : '',
  ];
  let child: ChildProcess | undefined;
  let exited: Promise<RedisExit> = Promise.resolve({ code: null, signal: null });

  async function start(): Promise<void> {
    const c = spawn(binary!, args, { stdio: 'ignore', detached: opts.detached ?? false });
    child = c;
    exited = new Promise((resolve) => c.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (c.exitCode !== null) throw new Error(`redis-server exited with code ${c.exitCode} (port ${port} taken?)`);
      if (await pong(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    c.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not answer within 30 s`);
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(sig);
    await exited;
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir: opts.dir,
    pid: () => child?.pid,
    exited: () => exited,
    kill: () => signal('SIGKILL'),
    start,
    stop: () => signal('SIGTERM'),
  };
}
