import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { TOP_END, TOP_START, targetRows, topSection, updateBenchmarks, writeBenchmarks, type SummaryResult, type SummaryRun } from '../../bench/summary.js';
import { identityCost, SAMPLE_META, SAMPLE_RUN } from './fixtures/bench-run-round-three.js';

const tables = (date: string) => `## ${date} — commit abc1234\n\n| scenario | x |\n| --- | --- |\n| single | 1 |\n`;
const row = (run: SummaryRun, start: string) => {
  const found = targetRows(run).find((r) => r.target.startsWith(start));
  if (!found) throw new Error(`no target row starting with ${start}`);
  return found;
};
/** The sample run with one scenario's result changed (the first of that name, or the one `pick` chooses). */
const changed = (name: string, patch: Partial<SummaryResult>, pick: (r: SummaryResult) => boolean = () => true): SummaryRun => {
  let done = false;
  return {
    ...SAMPLE_RUN,
    results: SAMPLE_RUN.results.map((r) => {
      if (done || r.scenario.name !== name || !pick(r)) return r;
      done = true;
      return { ...r, ...patch };
    }),
  };
};

describe('bench summary', () => {
  it('measures a full run against every round-three target', () => {
    const by = (start: string) => row(SAMPLE_RUN, start);
    // (8 + 11.7 + 10.3 + 2.3) s of service CPU over 1,000,000 events; the load generator left out.
    expect(by('batched random ids at 10 M stored: service CPU')).to.deep.include({ measured: '32.3 µs', met: false });
    expect(by('batched random ids at 10 M stored ≥ 3.5x')).to.deep.include({
      measured: '2.87x (51,479 events/s against JetStream 100,000 messages, 20% re-sent ids, 1,000 in flight: 17,937/s)',
      met: false,
    });
    expect(by('one event per request ≥ 0.4x')).to.deep.include({
      measured: '0.52x (9,391 against 17,937/s); against JetStream one message at a time, 64 in flight (11,608/s, p99 46.5 ms): 0.81x',
      met: true,
    });
    expect(by('batched ordered ids')).to.deep.include({ measured: '1.13x (57,987 against 51,479 events/s)', met: false });
    expect(by('one event per request, 64 in flight')).to.deep.include({ measured: 'p99 20.7 ms, 151.5 µs', met: false });
    expect(by('PostgreSQL batched')).to.deep.include({ measured: '64% (37,450 against 58,516 events/s)', met: false });
    expect(by('PostgreSQL one event')).to.deep.include({ measured: 'p99 32.0 ms (5,120 events/s)', met: false });
    expect(by('fan-out: API CPU')).to.deep.include({ measured: '0.50 µs (API 11 s against 3 s without subscribers, 16,000,000 messages; every one delivered: yes)', met: true });
    expect(by('fan-out paced')).to.deep.include({ measured: 'p99 180 ms; every event delivered: yes; 19,200 of 20,000 events/s asked (96%)', met: true });
    expect(by('memory')).to.deep.include({ measured: 'api 199, worker-1 239, worker-2 240 MB', met: true });
    expect(by('worker start')).to.deep.include({ measured: '1,966 ms at 10,000,000 stored (filter built after 8.8 s, peak RSS 126 MB)', met: true });
    expect(by('store size')).to.deep.include({ measured: 'batched-random 143 (1.53 GB, 10,700,000 stored); batched-ordered 130 (1.39 GB, 10,700,000 stored)', met: undefined });
    expect(by('an expired identity')).to.deep.include({ measured: 'sqlite 50.4 bytes (100 M: 5.0 GB); postgres 249.6 bytes (100 M: 25.0 GB)', met: false });
    expect(by('recovery')).to.deep.include({ measured: '7.5 s (32 jobs held at the kill)', met: true });
    expect(by('every count exact')).to.deep.include({ measured: 'yes, in all 11 runs and 2 JetStream runs', met: true });
  });

  it('shows beside each CPU target the stages alone, summed, and beside PostgreSQL its commits alone', () => {
    const stages = (http: number, queue: number, store: number, storeRate = 40_000) => ({
      bareHttp: { eventsPerSecond: 400_000, cpuMicrosPerEvent: http },
      bullmq: { eventsPerSecond: 130_000, cpuMicrosPerEvent: queue },
      store: { eventsPerSecond: storeRate, cpuMicrosPerEvent: store },
    });
    const run = {
      ...SAMPLE_RUN,
      results: SAMPLE_RUN.results.map((r) =>
        r.scenario.name === 'batched-random' ? { ...r, stages: stages(2.6, 9.9, 11.25) } : r.scenario.name === 'single' ? { ...r, stages: stages(33.2, 15.3, 11.5) } : r.scenario.name === 'pg-batched' ? { ...r, stages: stages(2, 8.5, 20, 39_703) } : r,
      ),
    };
    expect(row(run, 'batched random ids at 10 M stored: service CPU').measured).to.equal(
      '32.3 µs; the three stages alone, summed: 23.8 µs (HTTP 2.6, BullMQ with Redis 9.9, store commit 11.3)',
    );
    expect(row(run, 'one event per request, 64 in flight').measured).to.equal(
      'p99 20.7 ms, 151.5 µs; the three stages alone, summed: 60.0 µs (HTTP 33.2, BullMQ with Redis 15.3, store commit 11.5)',
    );
    // 39,703 of the SQLite pipeline's 58,516 events/s.
    expect(row(run, 'PostgreSQL batched').measured).to.equal("64% (37,450 against 58,516 events/s); PostgreSQL's commits alone (store stage, same run): 39,703 events/s, 68% of SQLite's pipeline");
    // A stage without its CPU (an older run's JSON) leaves the sum out.
    const partial = { ...run, results: run.results.map((r) => (r.scenario.name === 'single' ? { ...r, stages: { ...stages(1, 2, 3), store: { eventsPerSecond: 1 } } } : r)) };
    expect(row(partial, 'one event per request, 64 in flight').measured).to.equal('p99 20.7 ms, 151.5 µs');
  });

  it('judges each target at its bound: met at it, not met past it', () => {
    const cases: [string, SummaryRun, boolean][] = [
      // 20 s of service CPU over 1,000,000 events is 20 µs; the load's 9 s do not count.
      ['batched random ids at 10 M stored: service CPU', changed('batched-random', { cpuSeconds: { api: 5, 'worker-1': 7, 'worker-2': 6, redis: 2, load: 9 } }), true],
      ['batched random ids at 10 M stored: service CPU', changed('batched-random', { cpuSeconds: { api: 5, 'worker-1': 7, 'worker-2': 6, redis: 2.1 } }), false],
      ['batched random ids at 10 M stored ≥ 3.5x', changed('batched-random', { endToEndEventsPerSecond: 3.5 * 17_937 }), true],
      ['batched random ids at 10 M stored ≥ 3.5x', changed('batched-random', { endToEndEventsPerSecond: 3.5 * 17_937 - 1 }), false],
      ['one event per request ≥ 0.4x', changed('single', { endToEndEventsPerSecond: 7_175 }), true],
      ['one event per request ≥ 0.4x', changed('single', { endToEndEventsPerSecond: 7_174 }), false],
      ['batched ordered ids', changed('batched-ordered', { endToEndEventsPerSecond: 1.5 * 51_479 }), true],
      ['batched ordered ids', changed('batched-ordered', { endToEndEventsPerSecond: 1.5 * 51_479 - 1 }), false],
      // 22 s over 200,000 events is 110 µs.
      ['one event per request, 64 in flight', changed('single', { load: { latencyMs: { p99: 24.9 } }, cpuSeconds: { api: 12, 'worker-1': 5, 'worker-2': 5, load: 6 } }), true],
      ['one event per request, 64 in flight', changed('single', { load: { latencyMs: { p99: 25 } }, cpuSeconds: { api: 12, 'worker-1': 5, 'worker-2': 5 } }), false],
      ['one event per request, 64 in flight', changed('single', { load: { latencyMs: { p99: 24.9 } }, cpuSeconds: { api: 12, 'worker-1': 5, 'worker-2': 5.1 } }), false],
      ['PostgreSQL batched', { ...SAMPLE_RUN, results: changed('pg-batched', { endToEndEventsPerSecond: 40_000 }).results.map((r) => (r.scenario.name === 'empty-batched' ? { ...r, endToEndEventsPerSecond: 50_000 } : r)) }, true],
      ['PostgreSQL batched', changed('pg-batched', { endToEndEventsPerSecond: 46_812 }), false],
      ['PostgreSQL one event', changed('pg-single', { load: { latencyMs: { p99: 24.9 } } }), true],
      ['PostgreSQL one event', changed('pg-single', { load: { latencyMs: { p99: 25 } } }), false],
      ['fan-out: API CPU', changed('fanout', { cpuSeconds: { api: 11.16 } }, (r) => r.subscribers === 100), false],
      ['fan-out: API CPU', changed('fanout', { stream: { expected: 16_000_000, exact: false, latencyMs: { p99: 640 } } }, (r) => r.subscribers === 100), false],
      ['fan-out paced', changed('fanout-paced', { stream: { expected: 16_000_000, exact: true, latencyMs: { p99: 250 } } }), false],
      ['fan-out paced', changed('fanout-paced', { stream: { expected: 16_000_000, exact: false, latencyMs: { p99: 100 } } }), false],
      ['fan-out paced', changed('fanout-paced', { publishEventsPerSecond: 18_999 }), false],
      ['fan-out paced', changed('fanout-paced', { publishEventsPerSecond: 19_000 }), true],
      ['memory', changed('batched-random', { peakRssMb: { api: 256, 'worker-1': 320, 'worker-2': 320 } }), true],
      ['memory', changed('batched-random', { peakRssMb: { api: 257, 'worker-1': 200 } }), false],
      ['memory', changed('batched-random', { peakRssMb: { api: 200, 'worker-1': 200, 'worker-2': 321 } }), false],
      ['memory', changed('batched-random', { peakRssMb: { api: 200 } }), false],
      ['worker start', { ...SAMPLE_RUN, workerStart: { ...SAMPLE_RUN.workerStart!, firstCommitMs: 2000 } }, true],
      ['worker start', { ...SAMPLE_RUN, workerStart: { ...SAMPLE_RUN.workerStart!, firstCommitMs: 2001 } }, false],
      ['an expired identity', { ...SAMPLE_RUN, identityCost: [identityCost('sqlite', 48)] }, true],
      ['an expired identity', { ...SAMPLE_RUN, identityCost: [identityCost('sqlite', 48.01)] }, false],
      ['recovery', changed('recovery', { recovery: { heldJobs: 3, seconds: 10.1 } }), false],
      ['recovery', changed('recovery', { recovery: { heldJobs: 3, seconds: undefined } }), false],
    ];
    for (const [start, run, met] of cases) expect(row(run, start).met, `${start}: ${row(run, start).measured}`).to.equal(met);
  });

  it('says what a run lacked or got wrong rather than leaving it out', () => {
    const partial: SummaryRun = {
      results: SAMPLE_RUN.results.filter((r) => !['recovery', 'pg-batched', 'fanout-paced'].includes(r.scenario.name)).map((r) => (r.scenario.name === 'wait' ? { ...r, exact: false } : r)),
      jetstream: SAMPLE_RUN.jetstream.map((j) => (j.name === 'single' ? { ...j, exact: false } : j)),
    };
    const rows = targetRows(partial);
    for (const target of ['recovery', 'PostgreSQL batched', 'fan-out paced', 'worker start', 'identity cost']) {
      expect(rows.find((r) => r.target === target)).to.deep.equal({ target, measured: 'not in this run', met: undefined });
    }
    expect(rows.find((r) => r.target.startsWith('every count exact'))).to.deep.include({ measured: '**no** in wait, JetStream single', met: false });
    const noJetStream = targetRows({ ...SAMPLE_RUN, jetstream: [] });
    expect(noJetStream.filter((r) => r.measured === 'not in this run').map((r) => r.target)).to.deep.equal(['batched against JetStream', 'one event per request against JetStream']);
    expect(targetRows({ ...SAMPLE_RUN, identityCost: [identityCost('postgres', 250)] }).find((r) => r.target === 'identity cost')).to.deep.include({ measured: 'not in this run' });
  });

  it('puts the date, commit and machine in the top section, and each target once', () => {
    const top = topSection(SAMPLE_RUN, SAMPLE_META);
    expect(top.startsWith(TOP_START)).to.equal(true);
    expect(top).to.include('## Where things stand: the full run of 2026-12-02 05:15 UTC, commit 3d34fbb');
    expect(top).to.include('AMD EPYC, 2 cores, 24 GiB');
    expect(top).to.include("| recovery: a killed worker's jobs committed by another within 10 s | 7.5 s (32 jobs held at the kill) | yes |");
    expect(top).to.include('| store size at the end of the 10 M scenarios, bytes per stored identity (no target) | batched-random 143');
    expect(top.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| target') && !l.startsWith('| ---'))).to.have.length(targetRows(SAMPLE_RUN).length);
  });

  it("rewrites the top section after a full run and adds each run's tables first under Runs, keeping the older ones", () => {
    const first = updateBenchmarks('', tables('2026-12-02 05:15 UTC'), topSection(SAMPLE_RUN, SAMPLE_META));
    // A partial run: its tables are added, the top section stays.
    const second = updateBenchmarks(first, tables('2026-12-03 01:00 UTC'), undefined);
    expect(second.match(/Where things stand/g)).to.have.length(1);
    expect(second).to.include('commit 3d34fbb');
    const runs = second.slice(second.indexOf('## Runs'));
    expect(runs.indexOf('### 2026-12-03 01:00 UTC')).to.be.lessThan(runs.indexOf('### 2026-12-02 05:15 UTC'));
    // A full run: a new top section, every table still there.
    const newer = topSection(SAMPLE_RUN, { ...SAMPLE_META, date: '2026-12-04 02:00 UTC', commit: 'def5678' });
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
      writeBenchmarks(file, { run: SAMPLE_RUN, meta: SAMPLE_META, tables: tables('2026-12-02 05:15 UTC'), full: true });
      writeBenchmarks(file, { run: SAMPLE_RUN, meta: SAMPLE_META, tables: tables('2026-12-02 06:00 UTC'), full: false });
      const text = fs.readFileSync(file, 'utf8');
      expect(text).to.include('Where things stand');
      expect(text.match(/^### /gm)).to.have.length(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
