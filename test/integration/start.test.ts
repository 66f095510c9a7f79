// `npm start` (dist/scripts/start.js) watches its children: its private Redis killed, it
// says so, brings Redis back on the same port and append-only file, and the service goes
// on; nothing acknowledged before is lost. SIGTERM stops everything, Redis included.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/redis-server.js';
import { ROOT } from '../../tools/harness/root.js';
import { allEvents, publish, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';

/** The pid Redis itself reports. */
async function redisPid(url: string): Promise<number> {
  const client = new Redis(url);
  try {
    return Number(/process_id:(\d+)/.exec(await client.info('server'))?.[1]);
  } finally {
    client.disconnect();
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('npm start', function () {
  this.timeout(90_000);
  let dataDir: string;
  let child: ChildProcess | undefined;
  let output = '';

  before(function () {
    if (!fs.existsSync(path.join(ROOT, 'dist/scripts/start.js'))) throw new Error('run npm run build first');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-start-'));
  });
  after(async () => {
    // SIGTERM first: start stops its children (and Redis) itself; SIGKILL would orphan them.
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 15_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(output.split('\n').slice(-40).join('\n'));
  });

  it('restarts its private Redis when it dies, saying so, and stops cleanly after', async () => {
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
    const started = spawn(process.execPath, [path.join(ROOT, 'dist/scripts/start.js')], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    started.stdout.on('data', (c: Buffer) => (output += c.toString()));
    started.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => started.once('exit', (code) => resolve(code)));

    const redisUrl = await waitFor(() => /private redis-server at (redis:\/\/\S+)/.exec(output)?.[1], { what: 'the private Redis to start' });
    const firstPid = await redisPid(redisUrl);
    await waitFor(async () => (await fetch(`${baseUrl}/ready`).catch(() => undefined))?.status === 200, { timeoutMs: 30_000, what: 'the API and worker to be ready' });
    // The address it names is the one it binds, and a local bind needs no warning.
    expect(output).to.include(`API listening on http://127.0.0.1:${port} `);
    expect(output).not.to.match(/warning/);
    const before = event({ topic: 'start-test' });
    expect((await publish(baseUrl, before)).status).to.equal(202);

    process.kill(firstPid, 'SIGKILL');
    await waitFor(() => /private redis-server exited \(SIGKILL\); restarting it/.test(output), { what: 'start to say Redis died' });
    await waitFor(() => /private redis-server is back/.test(output), { timeoutMs: 30_000, what: 'Redis to be back' });
    const secondPid = await redisPid(redisUrl);
    expect(secondPid).not.to.equal(firstPid);
    expect(alive(secondPid)).to.equal(true);

    const after = event({ topic: 'start-test' });
    await waitFor(async () => (await publish(baseUrl, after)).status === 202, { timeoutMs: 30_000, what: 'publishing to work again' });
    await waitFor(async () => (await stats(baseUrl)).pending === 0, { timeoutMs: 30_000, what: 'the queue to drain' });
    const stored = (await allEvents(baseUrl, 'start-test')).map((e) => e.event_id as string);
    expect(stored).to.include.members([before.event_id, after.event_id]);

    started.kill('SIGTERM');
    expect(await exited).to.equal(0);
    expect(alive(secondPid)).to.equal(false);
    expect(output).not.to.match(/stopping everything/);
  });

  it('says it listens on every interface when HOST is unset, and warns that nothing is guarded', async () => {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-start-any-'));
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), DATA_DIR: dir, PORT: String(port), LOG_LEVEL: 'warn' };
    const started = spawn(process.execPath, [path.join(ROOT, 'dist/scripts/start.js')], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    started.stdout.on('data', (c: Buffer) => (said += c.toString()));
    started.stderr.on('data', (c: Buffer) => (said += c.toString()));
    const exited = new Promise<number | null>((resolve) => started.once('exit', (code) => resolve(code)));
    try {
      await waitFor(() => /warning: /.test(said), { timeoutMs: 30_000, what: 'start to name its address' });
      expect(said).to.include(`API listening on every interface (HOST=0.0.0.0), port ${port}: open http://127.0.0.1:${port}`);
      expect(said).to.match(/warning: anyone who can reach this machine on port \d+ can make publishes \(API_KEY unset\) and reads \(READ_API_KEY unset\)/);
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.status === 200, { timeoutMs: 30_000, what: 'the API to answer' });
    } finally {
      started.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 15_000))]);
      if (code === 'late') started.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on Ctrl-C (SIGINT to its whole process group) stops the API and the worker before its private Redis', async () => {
    const dir = path.join(dataDir, 'ctrl-c');
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), DATA_DIR: dir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
    // A group of its own, as a shell gives a foreground job: the terminal's Ctrl-C signals the group.
    const started = spawn(process.execPath, [path.join(ROOT, 'dist/scripts/start.js')], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child = started;
    output = '';
    started.stdout.on('data', (c: Buffer) => (output += c.toString()));
    started.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => started.once('exit', (code) => resolve(code)));
    const redisUrl = await waitFor(() => /private redis-server at (redis:\/\/\S+)/.exec(output)?.[1], { what: 'the private Redis to start' });
    const pid = await redisPid(redisUrl);
    await waitFor(async () => (await fetch(`${baseUrl}/ready`).catch(() => undefined))?.status === 200, { timeoutMs: 30_000, what: 'the API and worker to be ready' });
    expect((await publish(baseUrl, event({ topic: 'ctrl-c' }))).status).to.equal(202);

    process.kill(-started.pid!, 'SIGINT');
    expect(await exited).to.equal(0);
    expect(alive(pid)).to.equal(false);
    // Redis was stopped by start itself (SIGTERM, after its children), never by the Ctrl-C.
    const redisLog = fs.readFileSync(path.join(dir, 'redis', 'redis.log'), 'utf8');
    expect(redisLog).to.match(/Received SIGTERM/);
    expect(redisLog).not.to.match(/Received SIGINT/);
    expect(output).not.to.match(/ECONNREFUSED/);
  });
});
