// How long a hostile or merely large request body can hold the API's event loop, and how
// much memory it takes: the API (with a private redis-server) gets each shape of
// tools/parse-stall/shapes.ts while a prober, a process of its own, asks GET /health back to
// back. Two measures of the stall: the longest /health answer during the request (what a
// client saw, waits for a core on a busy machine included), and the API's own longest
// event-loop delay over the request (Node's monitorEventLoopDelay, as its /metrics gives it:
// `nodejs_eventloop_lag_max_seconds`, reset by each scrape). The API's peak RSS (the
// kernel's high-water mark, reset before each request) over its RSS before is the memory.
//
//   npm run build && node dist/tools/parse-stall.js [--label after] [--rounds 3] [--only name,...]
//
// Appends a table to bench-results/parse-stall.md.
import { execSync, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startRedisServer } from '../scripts/redis-server.js';
import { startCluster } from './harness/cluster.js';
import { ROOT } from './harness/root.js';
import { shapes, type Shape } from './parse-stall/shapes.js';

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One request; the big bodies on a connection of their own, the probes on a kept-alive one. */
function send(base: URL, method: string, urlPath: string, body?: Shape): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = body ? { 'content-type': body.contentType, 'content-length': body.body.length } : {};
    const req = http.request({ host: base.hostname, port: base.port, method, path: urlPath, headers, agent: body ? false : agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body?.body);
  });
}

/** Asks /health back to back until stopped; the longest answer, in ms. */
function probeLoop(base: URL): { stop(): Promise<{ maxMs: number; probes: number }> } {
  let running = true;
  let maxMs = 0;
  let probes = 0;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      // A probe on a socket the server had just closed fails: it is asked again, its wait counted.
      const ok = await send(base, 'GET', '/health').then(() => true, () => false);
      if (ok) maxMs = Math.max(maxMs, performance.now() - t);
      probes++;
      await new Promise((r) => setTimeout(r, 1));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { maxMs, probes };
    },
  };
}

/**
 * The prober in a process of its own: in this one, sending a 16 MiB body and this process'
 * own garbage collection would delay the probes too, and count as the API's stall.
 */
async function probe(base: URL): Promise<{ stop(): Promise<{ maxMs: number; probes: number }> }> {
  const child: ChildProcess = fork(process.argv[1]!, ['--probe', base.toString()], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  // Resolved once it probes: a request sent before then would be watched only in part.
  await new Promise<void>((resolve) => child.once('message', () => resolve()));
  return {
    async stop() {
      const result = new Promise<{ maxMs: number; probes: number }>((resolve) => child.once('message', (m) => resolve(m as { maxMs: number; probes: number })));
      child.send('stop');
      const r = await result;
      child.disconnect();
      return r;
    },
  };
}

/** Run as the prober (probe()): probes until told to stop, then reports. */
function beProber(base: URL): void {
  const loop = probeLoop(base);
  process.send!('started');
  process.once('message', () => void loop.stop().then((r) => process.send!(r)));
}

/** The API's longest event-loop delay since the last scrape, in ms (and a reset of it). */
async function apiLoopDelayMs(base: URL): Promise<number> {
  const { text } = await send(base, 'GET', '/metrics');
  const seconds = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1];
  if (seconds === undefined) throw new Error('the API\'s /metrics has no nodejs_eventloop_lag_max_seconds');
  return Number(seconds) * 1000;
}

const kib = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

type Row = { shape: Shape; status: number; error: string; stallMs: number[]; loopDelayMs: number[]; growthMiB: number[]; requestMs: number[] };

async function measure(base: URL, pid: number, shape: Shape, rounds: number): Promise<Row> {
  const row: Row = { shape, status: 0, error: '', stallMs: [], loopDelayMs: [], growthMiB: [], requestMs: [] };
  for (let r = 0; r < rounds; r++) {
    await new Promise((res) => setTimeout(res, 300));
    const before = kib(pid, 'VmRSS');
    // Resets the high-water mark to the present RSS (Linux, "5" to clear_refs).
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const prober = await probe(base);
    await new Promise((res) => setTimeout(res, 20));
    await apiLoopDelayMs(base);
    const t = performance.now();
    const answer = await send(base, 'POST', '/publish', shape);
    row.requestMs.push(performance.now() - t);
    // What follows the answer (the collection of what the request left) counts too.
    await new Promise((res) => setTimeout(res, 200));
    row.loopDelayMs.push(await apiLoopDelayMs(base));
    const { maxMs } = await prober.stop();
    row.stallMs.push(maxMs);
    row.growthMiB.push((kib(pid, 'VmHWM') - before) / 1024);
    row.status = answer.status;
    row.error = answer.status >= 400 ? String((JSON.parse(answer.text) as { error?: string }).error) : '';
  }
  return row;
}

const sh = (cmd: string) => {
  try {
    return execSync(cmd, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};

function table(label: string, rows: Row[], idleMs: number, idleLoopMs: number): string {
  const max = (xs: number[]) => Math.max(...xs);
  const fmt = (x: number) => x.toFixed(0);
  const dirty = sh('git status --porcelain --untracked-files=no') === '' ? '' : ' (with uncommitted changes)';
  const lines = [
    `## ${label}: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${sh('git rev-parse --short HEAD')}${dirty}`,
    '',
    `Load average before the run: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (${os.cpus().length} cores, shared). Node ${process.version}.`,
    `${rows[0]?.stallMs.length ?? 0} rounds per shape; max over the rounds. Longest /health answer with no request in flight: ${idleMs.toFixed(0)} ms; the API's longest event-loop delay then: ${idleLoopMs.toFixed(0)} ms.`,
    '',
    '| shape | body | answer | max /health wait (ms) | API event-loop delay, max (ms) | peak RSS growth (MiB) | growth / body size | request (ms) |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const size = r.shape.body.length / 2 ** 20;
    const answer = `${r.status}${r.error ? ` ${r.error}` : ''}`;
    lines.push(`| ${r.shape.what} | ${size.toFixed(1)} MiB | ${answer} | ${fmt(max(r.stallMs))} | ${fmt(max(r.loopDelayMs))} | ${fmt(max(r.growthMiB))} | ${(max(r.growthMiB) / size).toFixed(1)} | ${fmt(max(r.requestMs))} |`);
  }
  return lines.join('\n') + '\n\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { label: { type: 'string', default: 'run' }, rounds: { type: 'string', default: '3' }, only: { type: 'string' } } });
  const only = values.only?.split(',');
  const list = shapes().filter((s) => only === undefined || only.includes(s.name));
  const load = os.loadavg();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parse-stall-'));
  const redis = await startRedisServer({ dir: path.join(dir, 'redis'), logFile: path.join(dir, 'redis.log') });
  const cluster = await startCluster({ redisUrl: redis.url, workers: 0, dataDir: path.join(dir, 'data') });
  try {
    const base = new URL(cluster.baseUrl);
    const pid = cluster.api.child.pid!;
    const idle = await probe(base);
    await apiLoopDelayMs(base);
    await new Promise((r) => setTimeout(r, 1000));
    const idleLoopMs = await apiLoopDelayMs(base);
    const idleMs = (await idle.stop()).maxMs;
    const rows: Row[] = [];
    for (const shape of list) {
      const row = await measure(base, pid, shape, Number(values.rounds));
      console.log(`${shape.name}: ${row.status} ${row.error} stall ${row.stallMs.map((x) => x.toFixed(0)).join('/')} ms, loop delay ${row.loopDelayMs.map((x) => x.toFixed(0)).join('/')} ms, growth ${row.growthMiB.map((x) => x.toFixed(0)).join('/')} MiB`);
      rows.push(row);
    }
    const out = path.join(ROOT, 'bench-results/parse-stall.md');
    if (!fs.existsSync(out)) fs.writeFileSync(out, '# Parse stall: the event loop and memory under hostile request bodies\n\nWritten by `node dist/tools/parse-stall.js`; see that file for how.\n\n');
    fs.appendFileSync(out, table(values.label, rows, idleMs, idleLoopMs).replace('Load average before the run: ', `Load average before the run: ${load.map((x) => x.toFixed(2)).join(' ')}; after: `));
  } finally {
    agent.destroy();
    await cluster.destroy();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const proberOf = process.argv.indexOf('--probe');
if (proberOf !== -1) beProber(new URL(process.argv[proberOf + 1]!));
else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
