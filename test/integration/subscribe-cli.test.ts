// The subscriber CLI (tools/subscribe.ts, compiled) against real processes: NDJSON of the
// stored events, a pipe closed early, a refused key, and a resume across an API restart.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { useCluster } from '../support/suite.js';
import { allEvents, drained, publish } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist/tools/subscribe.js');

type Run = { code: number | null; stdout: string; stderr: string };
type Running = { done: Promise<Run>; stdout(): string; stderr(): string };

function startCli(args: string[], env: Record<string, string> = {}, shell?: string): Running {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const [cmd, argv] = shell === undefined ? [process.execPath, [CLI, ...args]] : ['bash', ['-c', shell]];
  const child = spawn(cmd, argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { done, stdout: () => stdout, stderr: () => stderr };
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));

describe('subscriber CLI', function () {
  const shared = useCluster({ workers: 1 });
  const base = () => shared.cluster.baseUrl;
  let received = 0;

  async function send(topic: string, n: number): Promise<void> {
    for (let i = 0; i < n; i += 500) {
      const events = Array.from({ length: Math.min(500, n - i) }, () => event({ topic }));
      expect((await publish(base(), { events })).status).to.equal(202);
      received += events.length;
    }
    await drained(base(), received);
  }

  it('explains itself with --help and refuses bad options with exit code 2', async () => {
    const help = await startCli(['--help']).done;
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/Usage: npm run subscribe/);
    const bad = await startCli(['--after', 'x']).done;
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/--after must be a whole number/);
  });

  it('prints the stored events of a topic as NDJSON, each once, in seq order', async () => {
    const topic = `cli-${randomUUID().slice(0, 8)}`;
    await send(topic, 1200);
    const run = await startCli(['--url', base(), '--topic', topic, '--after', '0', '--count', '1200']).done;
    expect(run.code, run.stderr).to.equal(0);
    expect(lines(run.stdout)).to.deep.equal(await allEvents(base(), topic));
    expect(run.stderr).to.match(/connected to/);
  });

  it('exits 0 when the reader of its output goes away (piped into head)', async () => {
    const topic = `cli-head-${randomUUID().slice(0, 8)}`;
    await send(topic, 2000);
    const run = await startCli([], {}, `set -o pipefail; node '${CLI}' --url ${base()} --topic ${topic} --after 0 | head -n 3`).done;
    expect(run.code, run.stderr).to.equal(0);
    expect(lines(run.stdout)).to.have.length(3);
  });

  it('reports a refused key with exit code 1, and reads with READ_API_KEY from the environment', async () => {
    const api = await shared.cluster.startExtraApi({ READ_API_KEY: 'k-cli' });
    try {
      const refused = await startCli(['--url', api.baseUrl, '--after', '0', '--count', '1']).done;
      expect(refused.code).to.equal(1);
      expect(refused.stderr).to.match(/refused: HTTP 401/);
      const allowed = await startCli(['--url', api.baseUrl, '--after', '0', '--count', '1'], { READ_API_KEY: 'k-cli' }).done;
      expect(allowed.code, allowed.stderr).to.equal(0);
      expect(lines(allowed.stdout)).to.have.length(1);
    } finally {
      await shared.cluster.extraApis.at(-1)!.term();
    }
  });

  it('without --after, says it waits for new events and how to print the stored ones', async () => {
    const topic = `cli-now-${randomUUID().slice(0, 8)}`;
    await send(topic, 3);
    const cli = startCli(['--url', base(), '--topic', topic, '--count', '1']);
    await waitFor(() => /waiting for new events/.test(cli.stderr()), { what: 'the CLI to say it waits' });
    expect(cli.stderr()).to.match(/waiting for new events \(stored after seq \d+\); to print the events already stored first, add --after 0/);
    await send(topic, 1);
    const run = await cli.done;
    expect(run.code, run.stderr).to.equal(0);
    // Only the new event: the three stored before it started are not printed.
    expect(lines(run.stdout)).to.deep.equal((await allEvents(base(), topic)).slice(3));
  });

  it('reconnects with the last id after the API restarts: no gap, no repeat', async () => {
    const topic = `cli-restart-${randomUUID().slice(0, 8)}`;
    const cli = startCli(['--url', base(), '--topic', topic, '--count', '2000']);
    await waitFor(() => /connected/.test(cli.stderr()), { what: 'the CLI to connect' });
    await send(topic, 1000);
    await waitFor(() => lines(cli.stdout()).length === 1000, { timeoutMs: 30_000, what: 'the first 1000 events' });
    expect((await shared.cluster.api.term()).code).to.equal(0);
    await shared.cluster.startApi();
    await send(topic, 1000);
    const run = await cli.done;
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.match(/reconnecting in [\d.]+ s after seq \d+/);
    expect(lines(run.stdout)).to.deep.equal(await allEvents(base(), topic));
  });
});
