import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { TOP_END, TOP_START, targetRows, topSection, updateBenchmarks, writeBenchmarks } from '../../bench/summary.js';
import { SAMPLE_META, SAMPLE_RESULTS } from './fixtures/bench-run-2026-12-02.js';

const tables = (date: string) => `## ${date} — commit abc1234\n\n| scenario | x |\n| --- | --- |\n| single | 1 |\n`;

describe('bench summary', () => {
  it('measures a full run against every target', () => {
    const rows = targetRows(SAMPLE_RESULTS);
    const by = (start: string) => rows.find((r) => r.target.startsWith(start))!;
    expect(by('growth')).to.deep.include({ measured: '88% (51,479 against 58,516 events/s)', met: true });
    expect(by('batched random ids at 10 M stored ≥ 60,000')).to.deep.include({ met: false });
    expect(by('batched ordered ids')).to.deep.include({ measured: '1.13x (57,987 events/s)', met: false });
    // (14.6 + 5.7 + 5.7 + 4.3) s of service CPU over 200,000 events; the load generator's 5.6 s left out.
    expect(by('one event per request, 64')).to.deep.include({ measured: '151.5 µs, p99 20.7 ms', met: true });
    expect(by('one event per request: ≥ 10,000')).to.deep.include({ measured: '9,391 events/s', met: false });
    expect(by('recovery')).to.deep.include({ measured: '7.5 s (32 jobs held at the kill)', met: true });
    expect(by('every count exact')).to.deep.include({ measured: 'yes, in all 6 scenarios', met: true });
  });

  it('says what a run lacked or got wrong rather than leaving it out', () => {
    const partial = SAMPLE_RESULTS.filter((r) => r.scenario.name !== 'recovery').map((r) => (r.scenario.name === 'wait' ? { ...r, exact: false } : r));
    const rows = targetRows(partial);
    expect(rows.find((r) => r.target === 'recovery')).to.deep.equal({ target: 'recovery', measured: 'not in this run', met: undefined });
    expect(rows.find((r) => r.target.startsWith('every count exact'))).to.deep.include({ measured: '**no** in wait', met: false });
  });

  it('puts the date, commit and machine in the top section', () => {
    const top = topSection(SAMPLE_RESULTS, SAMPLE_META);
    expect(top.startsWith(TOP_START)).to.equal(true);
    expect(top).to.include('## Where things stand: the full run of 2026-12-02 05:15 UTC, commit 3d34fbb');
    expect(top).to.include('AMD EPYC, 2 cores, 24 GiB');
    expect(top).to.include('| recovery: a killed worker\'s jobs committed by another within 10 s | 7.5 s (32 jobs held at the kill) | yes |');
  });

  it('rewrites the top section after a full run and adds each run\'s tables first under Runs, keeping the older ones', () => {
    const first = updateBenchmarks('', tables('2026-12-02 05:15 UTC'), topSection(SAMPLE_RESULTS, SAMPLE_META));
    // A partial run: its tables are added, the top section stays.
    const second = updateBenchmarks(first, tables('2026-12-03 01:00 UTC'), undefined);
    expect(second.match(/Where things stand/g)).to.have.length(1);
    expect(second).to.include('commit 3d34fbb');
    const runs = second.slice(second.indexOf('## Runs'));
    expect(runs.indexOf('### 2026-12-03 01:00 UTC')).to.be.lessThan(runs.indexOf('### 2026-12-02 05:15 UTC'));
    // A full run: a new top section, every table still there.
    const newer = topSection(SAMPLE_RESULTS, { ...SAMPLE_META, date: '2026-12-04 02:00 UTC', commit: 'def5678' });
    const third = updateBenchmarks(second, tables('2026-12-04 02:00 UTC'), newer);
    expect(third.match(new RegExp(TOP_START, 'g'))).to.have.length(1);
    expect(third.match(new RegExp(TOP_END, 'g'))).to.have.length(1);
    expect(third).to.include('full run of 2026-12-04 02:00 UTC, commit def5678');
    expect(third).not.to.include('full run of 2026-12-02');
    expect(third.match(/^### \d{4}-/gm)).to.have.length(3);
    expect(third.match(/^## Runs$/gm)).to.have.length(1);
  });

  it('takes over a file written before the top section existed, keeping its tables', () => {
    const legacy = '# Benchmarks\n\nEvery table here was written by `npm run bench` (bench/run.ts); newest first.\n\n' + tables('2026-11-26 15:51 UTC');
    const next = updateBenchmarks(legacy, tables('2026-12-05 00:00 UTC'), undefined);
    expect(next).to.include('## 2026-11-26 15:51 UTC');
    expect(next.indexOf('### 2026-12-05')).to.be.lessThan(next.indexOf('## 2026-11-26'));
    expect(next.match(/^# Benchmarks$/gm)).to.have.length(1);
  });

  it('writes the file in place', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-summary-'));
    try {
      const file = path.join(dir, 'BENCHMARKS.md');
      writeBenchmarks(file, { results: SAMPLE_RESULTS, meta: SAMPLE_META, tables: tables('2026-12-02 05:15 UTC'), full: true });
      writeBenchmarks(file, { results: SAMPLE_RESULTS, meta: SAMPLE_META, tables: tables('2026-12-02 06:00 UTC'), full: false });
      const text = fs.readFileSync(file, 'utf8');
      expect(text).to.include('Where things stand');
      expect(text.match(/^### /gm)).to.have.length(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
