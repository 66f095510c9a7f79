// The publisher CLI (tools/publish.ts, compiled) against real processes: files, stdin,
// generated load with copies, pacing, a refused request, and retries through an outage.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startCluster } from '../../tools/harness/cluster.js';
import { useCluster } from '../support/suite.js';
import { allEvents, stats } from '../../tools/harness/http.js';
import { drained as drainedTo } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { waitFor } from '../../tools/harness/wait.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist/tools/publish.js');

type Run = { code: number | null; stdout: string; stderr: string; ms: number };
type Running = { done: Promise<Run>; stderr(): string };

function startCli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Running {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(opts.input ?? '');
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })),
  );
  return { done, stderr: () => stderr };
}

const runCli = (args: string[], opts?: Parameters<typeof startCli>[1]) => startCli(args, opts).done;

type Summary = { sent: number; requests: number; accepted: number; retried: number; failed: number };

function summary(run: Run): Summary {
  const n = (re: RegExp) => {
    const m = re.exec(run.stdout);
    if (!m) throw new Error(`no ${re.source} in the summary:\n${run.stdout}\n${run.stderr}`);
    return Number(m[1]!.replace(/,/g, ''));
  };
  return {
    sent: n(/sent\s+([\d,]+) events/),
    requests: n(/in ([\d,]+) requests/),
    accepted: n(/accepted\s+([\d,]+)/),
    retried: n(/retried\s+([\d,]+) requests/),
    failed: n(/failed\s+([\d,]+)/),
  };
}

describe('publisher CLI', function () {
  const shared = useCluster({ workers: 1 });
  let tmp: string;
  let received = 0;
  const drained = () => drainedTo(shared.cluster.baseUrl, received);

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-cli-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('explains every flag with --help', async () => {
    const run = await runCli(['--help']);
    expect(run.code).to.equal(0);
    for (const flag of ['--url', '--file', '--count', '--rate', '--batch', '--duplicates', '--topics', '--concurrency', '--api-key', '--wait', '--help']) {
      expect(run.stdout).to.include(flag);
    }
    const bad = await runCli(['--duplicates', '1.5']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('--duplicates must be a number from 0 to 0.99');
    const unknown = await runCli(['--nope']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/Unknown option '--nope'/);
  });

  it('sends a JSON array file and a {"events": [...]} file in batches', async () => {
    const a = Array.from({ length: 250 }, () => event({ topic: 'cli-array' }));
    const b = Array.from({ length: 30 }, () => event({ topic: 'cli-object' }));
    fs.writeFileSync(path.join(tmp, 'a.json'), JSON.stringify(a, null, 2));
    fs.writeFileSync(path.join(tmp, 'b.json'), JSON.stringify({ events: b }));

    const runA = await runCli(['--url', shared.cluster.baseUrl, '--file', path.join(tmp, 'a.json'), '--batch', '100']);
    expect(runA.code, runA.stderr).to.equal(0);
    expect(summary(runA)).to.deep.equal({ sent: 250, requests: 3, accepted: 250, retried: 0, failed: 0 });
    const runB = await runCli(['--url', shared.cluster.baseUrl, '--file', path.join(tmp, 'b.json')]);
    expect(runB.code, runB.stderr).to.equal(0);
    expect(summary(runB)).to.deep.equal({ sent: 30, requests: 1, accepted: 30, retried: 0, failed: 0 });
    received += 280;

    await drained();
    const stored = await allEvents(shared.cluster.baseUrl, 'cli-array');
    expect(stored.map((e) => e.event_id)).to.have.members(a.map((e) => e.event_id));
    expect(stored[7].payload).to.deep.equal(a.find((e) => e.event_id === stored[7].event_id)!.payload);
    expect(await allEvents(shared.cluster.baseUrl, 'cli-object')).to.have.length(30);
  });

  it('counts what became of each event with --wait: stored, duplicate, conflict', async () => {
    const first = event({ topic: 'cli-wait' });
    const events = [first, event({ topic: 'cli-wait' }), { ...first }, { ...first, payload: { changed: true } }];
    fs.writeFileSync(path.join(tmp, 'w.json'), JSON.stringify(events));
    const run = await runCli(['--url', shared.cluster.baseUrl, '--file', path.join(tmp, 'w.json'), '--wait', '10']);
    expect(run.code, run.stderr).to.equal(0);
    expect(summary(run)).to.include({ sent: 4, accepted: 4 });
    expect(run.stdout).to.match(/stored\s+2\n/);
    expect(run.stdout).to.match(/duplicate\s+1\n/);
    expect(run.stdout).to.match(/conflict\s+1\n/);
    expect(run.stdout).to.match(/not processed within 10 s: 0\n/);
    received += 4;
    const bad = await runCli(['--wait', '0']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('--wait must be');
  });

  it('reads NDJSON from stdin', async () => {
    const events = Array.from({ length: 12 }, () => event({ topic: 'cli-stdin' }));
    const input = events.map((e) => JSON.stringify(e)).join('\r\n') + '\n\n';
    const run = await runCli(['--url', shared.cluster.baseUrl, '--file', '-', '--batch', '5'], { input });
    expect(run.code, run.stderr).to.equal(0);
    expect(summary(run)).to.deep.equal({ sent: 12, requests: 3, accepted: 12, retried: 0, failed: 0 });
    received += 12;
    await drained();
    expect((await allEvents(shared.cluster.baseUrl, 'cli-stdin')).map((e) => e.event_id)).to.have.members(events.map((e) => e.event_id));
  });

  it('refuses an invalid file before sending any of it', async () => {
    const lines = [JSON.stringify(event({ topic: 'cli-bad' })), JSON.stringify(event({ topic: 'cli-bad', timestamp: '2025-13-01T00:00:00Z' }))];
    const run = await runCli(['--url', shared.cluster.baseUrl, '--file', '-'], { input: lines.join('\n') });
    expect(run.code).to.equal(2);
    expect(run.stderr).to.include('line 2: timestamp must be an ISO 8601 date and time');
    expect(run.stdout).to.equal('');
    const s = await stats(shared.cluster.baseUrl);
    expect(s.received).to.equal(received);
    expect(s.topics).not.to.include('cli-bad');
  });

  it('generates load over the topics asked for, with exactly the share of copies asked for', async () => {
    const before = await drained();
    const run = await runCli(['--url', shared.cluster.baseUrl, '--count', '1000', '--duplicates', '0.2', '--topics', '4', '--batch', '50', '--concurrency', '3']);
    expect(run.code, run.stderr).to.equal(0);
    expect(summary(run)).to.deep.equal({ sent: 1000, requests: 20, accepted: 1000, retried: 0, failed: 0 });
    received += 1000;
    const after = await drained();
    expect(after.unique_processed - before.unique_processed).to.equal(800);
    expect(after.duplicate_dropped - before.duplicate_dropped).to.equal(200);
    const perTopic = after.per_topic as Record<string, number>;
    for (const topic of ['orders', 'payments', 'shipments', 'signups']) expect(perTopic[topic], topic).to.equal(200);
    expect(after.topics).not.to.include('refunds');
  });

  it('paces generated load with --rate', async () => {
    const run = await runCli(['--url', shared.cluster.baseUrl, '--count', '60', '--rate', '40', '--topics', '1']);
    expect(run.code, run.stderr).to.equal(0);
    expect(summary(run)).to.include({ sent: 60, accepted: 60 });
    received += 60;
    // 60 events at 40/s: the last request is due 1.25 s after the first (10 events each).
    expect(summary(run).requests).to.equal(6);
    expect(run.ms).to.be.within(1250, 15_000);
  });

  it('paces many requests with --rate without piling up listeners (no MaxListenersExceededWarning)', async () => {
    // One request per event: 30 paced waits, each once listening for Ctrl-C's abort.
    const run = await runCli(['--url', shared.cluster.baseUrl, '--count', '30', '--rate', '200', '--batch', '1', '--topics', '1']);
    expect(run.code, run.stderr).to.equal(0);
    expect(summary(run)).to.include({ sent: 30, accepted: 30, requests: 30 });
    received += 30;
    expect(run.stderr).not.to.include('MaxListenersExceededWarning');
  });

  it('draws a progress bar with rate and ETA on a terminal', async function () {
    // script(1) (util-linux, essential on Debian) gives the CLI a pseudo-terminal.
    if (!fs.existsSync('/usr/bin/script')) this.skip();
    const command = `'${process.execPath}' '${CLI}' --url ${shared.cluster.baseUrl} --count 300 --rate 400 --topics 1`;
    const child = spawn('/usr/bin/script', ['-qefc', command, '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, out).to.equal(0);
    received += 300;
    // The bar redraws its line: carriage return, then erase-line (ESC [2K).
    const screen = out.replaceAll('\u001b[2K', '<EL>');
    expect(screen).to.match(/\r<EL>\[#{24}\] 100% {2}300\/300 events {2}[\d,]+ ev\/s {2}retried 0 {2}failed 0 {2}ETA 0:00/);
    expect(screen).to.match(/\r<EL>\[#*-+\] +\d+% /);
    expect(out).to.match(/accepted\s+300/);
  });

  it('prints a plain progress line every few seconds when not on a terminal', async () => {
    const run = await runCli(['--url', shared.cluster.baseUrl, '--count', '120', '--rate', '20', '--topics', '1']);
    expect(run.code, run.stderr).to.equal(0);
    received += 120;
    expect(run.stderr).to.match(/^publish: \d+% {2}\d+\/120 events {2}[\d,]+ ev\/s {2}retried 0 {2}failed 0 {2}ETA \d+:\d\d$/m);
    expect(run.stderr).not.to.include('\r');
  });

  it('retries 503s, waiting as Retry-After says, until Redis is back', async function () {
    await drained();
    const file = path.join(tmp, 'outage.json');
    const events = Array.from({ length: 40 }, () => event({ topic: 'cli-outage' }));
    fs.writeFileSync(file, JSON.stringify(events));
    await shared.redis.kill();
    const outageStarted = Date.now();
    const cli = startCli(['--url', shared.cluster.baseUrl, '--file', file, '--batch', '40', '--concurrency', '1']);
    let refusals: number;
    try {
      // The API answers 503 with Retry-After: 1 while Redis is away.
      refusals = await waitFor(
        async () => {
          const text = await (await fetch(`${shared.cluster.baseUrl}/metrics`)).text();
          const n = Number(/^aggregator_publish_requests_total\{status="503"\} (\d+)$/m.exec(text)?.[1] ?? 0);
          return n >= 3 && n;
        },
        { what: 'three 503s', timeoutMs: 20_000 },
      );
    } finally {
      await shared.redis.start();
    }
    const waited = (Date.now() - outageStarted) / 1000;
    const run = await cli.done;
    expect(run.code, run.stderr).to.equal(0);
    const s = summary(run);
    expect(s).to.include({ sent: 40, accepted: 40, failed: 0 });
    expect(s.retried).to.be.at.least(3);
    expect(s.requests).to.equal(s.retried + 1);
    expect(run.stderr).to.match(/retrying 40 event\(s\) in 1\.0 s: 503 unavailable: the queue is unavailable; retry later/);
    // One second apart at least, as Retry-After asked; backoff alone would start at 0.25 s.
    expect(refusals).to.be.at.most(Math.ceil(waited) + 1);
    received += 40;
    await drained();
    expect(await allEvents(shared.cluster.baseUrl, 'cli-outage')).to.have.length(40);
  });

  it('retries through an API that does not answer, and sends each event once when it comes back', async () => {
    await shared.cluster.api.term();
    const events = Array.from({ length: 25 }, () => event({ topic: 'cli-down' }));
    const cli = startCli(['--url', shared.cluster.baseUrl, '--file', '-', '--batch', '25'], {
      input: events.map((e) => JSON.stringify(e)).join('\n'),
    });
    // It has been refused a connection at least once before the API returns.
    await waitFor(() => /retrying 25 event\(s\) in [\d.]+ s: ECONNREFUSED/.test(cli.stderr()), {
      what: 'the CLI to retry',
      timeoutMs: 10_000,
    });
    await shared.cluster.startApi();
    const run = await cli.done;
    expect(run.code, run.stderr).to.equal(0);
    const s = summary(run);
    expect(s).to.include({ sent: 25, accepted: 25, failed: 0 });
    expect(s.retried).to.be.at.least(1);
    received += 25;
    await drained();
    expect(await allEvents(shared.cluster.baseUrl, 'cli-down')).to.have.length(25);
  });

  it('does not retry a 4xx: its events count as failed, the error is printed, the exit code is 1', async () => {
    const guarded = await startCluster({ redisUrl: shared.redis.url, workers: 0, env: { API_KEY: 'k-cli' } });
    try {
      const wrong = await runCli(['--url', guarded.baseUrl, '--count', '30', '--batch', '10', '--api-key', 'nope']);
      expect(wrong.code).to.equal(1);
      expect(summary(wrong)).to.deep.equal({ sent: 30, requests: 3, accepted: 0, retried: 0, failed: 30 });
      expect(wrong.stderr).to.include('10 event(s) failed: 401 unauthorized: the API key is wrong');
      // The key from the environment, as the services take theirs.
      const right = await runCli(['--url', guarded.baseUrl, '--count', '30', '--batch', '10'], { env: { API_KEY: 'k-cli' } });
      expect(right.code, right.stderr).to.equal(0);
      expect(summary(right)).to.include({ accepted: 30, failed: 0 });
      expect((await stats(guarded.baseUrl)).received).to.equal(30);
    } finally {
      await guarded.destroy();
    }
  });
});
