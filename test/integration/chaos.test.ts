// A short `npm run chaos` (tools/chaos.ts, compiled) on each store: one deck of faults, so
// every kind the store allows is injected at least once (process kills, Redis killed, the
// Redis link reset, cut and blackholed; on PostgreSQL the owned server SIGKILLed, its sessions
// terminated, its link reset and cut), and the run's own books must come out exact. The long
// soak (1,000 faults) is run by hand: bench-results/chaos-soak-*.md.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { requireOwnedPostgres } from '../support/owned-postgres.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CHAOS = path.join(ROOT, 'dist/tools/chaos.js');

type Summary = {
  result: string;
  faults: Record<string, number>;
  faults_detail: Record<string, number>;
  total_faults: number;
  distinct_accepted: number;
  stored: number;
  received: number;
  unique_processed: number;
  duplicate_dropped: number;
  gave_up: number;
};

/** Runs the chaos tool to the end; its last line (the JSON summary) and its whole output. */
function chaos(args: string[]): Promise<{ code: number | null; summary: Summary | undefined; output: string }> {
  if (!fs.existsSync(CHAOS)) throw new Error(`${CHAOS} is missing: run npm run build first`);
  const child = spawn(process.execPath, [CHAOS, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      const last = output.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      resolve({ code, summary: last === undefined ? undefined : (JSON.parse(last) as Summary), output });
    }),
  );
}

/** The books of a passing run: every accepted identity stored once, the counters balanced. */
function expectExactBooks(s: Summary): void {
  expect(s.result).to.equal('pass');
  expect(s.distinct_accepted).to.be.greaterThan(0);
  expect(s.stored).to.equal(s.distinct_accepted);
  expect(s.unique_processed).to.equal(s.stored);
  expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
  expect(s.gave_up).to.equal(0);
}

describe('npm run chaos (a short run on each store)', function () {
  this.timeout(150_000);
  const PROCESS_KINDS = ['worker-kill', 'worker-term', 'api-kill', 'api-term'];

  it('survives one deck of faults on SQLite (processes, Redis, the Redis link) with exact books', async () => {
    const started = Date.now();
    const run = await chaos(['--kills', '8', '--store', 'sqlite', '--seed', '230401']);
    expect(run.code, run.output.slice(-4000)).to.equal(0);
    const s = run.summary!;
    expectExactBooks(s);
    expect(Object.keys(s.faults).sort()).to.deep.equal([...PROCESS_KINDS, 'redis-kill', 'link-reset', 'link-cut'].sort());
    expect(Object.keys(s.faults_detail).filter((k) => k.startsWith('link-')).every((k) => k.includes('redis'))).to.equal(true);
    console.log(`      (${s.total_faults} faults, ${s.distinct_accepted} events, ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  });

  it('survives one deck of faults on an owned PostgreSQL (and its server and link too) with exact books', async function () {
    requireOwnedPostgres(this);
    const started = Date.now();
    const run = await chaos(['--kills', '12', '--store', 'postgres', '--seed', '230402']);
    expect(run.code, run.output.slice(-4000)).to.equal(0);
    const s = run.summary!;
    expectExactBooks(s);
    expect(Object.keys(s.faults).sort()).to.deep.equal([...PROCESS_KINDS, 'redis-kill', 'link-reset', 'link-cut', 'pg-kill', 'pg-terminate'].sort());
    const links = Object.keys(s.faults_detail).filter((k) => k.startsWith('link-'));
    for (const [kind, link] of [['link-reset', 'redis'], ['link-reset', 'pg'], ['link-cut', 'redis'], ['link-cut', 'pg']]) {
      expect(links.some((k) => k.startsWith(`${kind} ${link}`)), `${kind} on the ${link} link`).to.equal(true);
    }
    console.log(`      (${s.total_faults} faults, ${s.distinct_accepted} events, ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  });
});
