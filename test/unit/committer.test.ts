// Group commit over a real store: batching, the batch bounds, and what happens to the jobs
// while the store fails.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { createLogger } from '../../shared/log.js';
import type { Event } from '../../shared/schema.js';
import type { JobOutcome, JobToCommit } from '../../shared/store/port.js';
import { STORE_FILE } from '../../shared/store/sqlite/schema.js';
import { openSqliteStore, type SqliteStore } from '../../shared/store/sqlite/store.js';
import { CommitterClosedError, createCommitter, type Committer, type CommitterOptions } from '../../services/worker/committer.js';
import { waitFor } from '../../tools/harness/wait.js';

const log = createLogger({ name: 'committer-test', level: 'silent' });

function ev(eventId: string, topic = 't'): Event {
  return { topic, event_id: eventId, timestamp: '2025-10-24T00:00:00Z', source: 'unit', payload: {} };
}

function job(id: string, size = 1): JobToCommit {
  return { id, events: Array.from({ length: size }, (_, i) => ev(`${id}-${i}`)) };
}

type Tracked<T> = { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown; promise: Promise<void> };

/** Watches a promise without awaiting it, so a test can say it is still pending. */
function track<T>(p: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { state: 'pending', promise: Promise.resolve() };
  t.promise = p.then(
    (value) => {
      t.state = 'resolved';
      t.value = value;
    },
    (error: unknown) => {
      t.state = 'rejected';
      t.error = error;
    },
  );
  return t;
}

describe('committer', () => {
  let dir: string;
  let store: SqliteStore;
  let committers: Committer[];
  /** The jobs of each call to the commit function, failed calls included. */
  let calls: string[][];
  let failuresLeft: number;
  /** Jobs a test watches, and their states as each call to the commit function began. */
  let watched: Tracked<JobOutcome>[];
  let statesAtCall: string[][];

  const commit = async (jobs: readonly JobToCommit[]): Promise<JobOutcome[]> => {
    calls.push(jobs.map((j) => j.id));
    statesAtCall.push(watched.map((t) => t.state));
    if (failuresLeft > 0) {
      failuresLeft--;
      throw new Error('SQLITE_FULL: database or disk is full');
    }
    return store.commitJobs(jobs);
  };

  const create = (opts: Partial<CommitterOptions> = {}): Committer => {
    const committer = createCommitter({ commit, maxJobs: 100, maxEvents: 10_000, lingerMs: 5, log, ...opts });
    committers.push(committer);
    return committer;
  };

  const storedIds = async () => (await store.listEvents({ after: 0, limit: 1_000_000 })).map((e) => e.event_id);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-committer-'));
    store = openSqliteStore({ dataDir: dir });
    committers = [];
    calls = [];
    failuresLeft = 0;
    watched = [];
    statesAtCall = [];
  });

  afterEach(async () => {
    // Close first: a committer left retrying would keep its timer, and mocha, alive.
    failuresLeft = 0;
    for (const c of committers) await c.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('commits jobs submitted together in one batch, each promise with its own outcome', async () => {
    const committer = create();
    const outcomes = await Promise.all([
      committer.submit(job('j1', 2)),
      committer.submit(job('j2', 1)),
      committer.submit({ id: 'j3', events: [ev('j1-0')] }),
    ]);
    expect(calls).to.deep.equal([['j1', 'j2', 'j3']]);
    expect(outcomes.map(({ id, stored, dropped, conflicts, redelivered }) => ({ id, stored, dropped, conflicts, redelivered }))).to.deep.equal([
      { id: 'j1', stored: 2, dropped: 0, conflicts: 0, redelivered: false },
      { id: 'j2', stored: 1, dropped: 0, conflicts: 0, redelivered: false },
      { id: 'j3', stored: 0, dropped: 1, conflicts: 0, redelivered: false },
    ]);
    expect(outcomes[2]?.results).to.deep.equal([{ status: 'duplicate', seq: outcomes[0]?.results[0]?.seq }]);
    expect(await storedIds()).to.deep.equal(['j1-0', 'j1-1', 'j2-0']);
    expect(committer.stats()).to.include({ commits: 1, jobs: 3, events: 4, lastError: null });
  });

  it('gathers jobs nobody waits on for lingerMs, and commits a waited job within waitLingerMs, with the group it joins', async () => {
    const committer = create({ lingerMs: 400, waitLingerMs: 2 });
    const started = performance.now();
    const j1 = committer.submit(job('j1'));
    await new Promise((r) => setTimeout(r, 50));
    const j2 = committer.submit(job('j2'));
    await Promise.all([j1, j2]);
    expect(calls, 'jobs 50 ms apart share a commit').to.deep.equal([['j1', 'j2']]);
    expect(performance.now() - started).to.be.at.least(390);
    // A waited job alone, then one joining a group that would linger: neither waits the 400 ms.
    const alone = performance.now();
    await committer.submit({ ...job('j3'), reply: true });
    expect(performance.now() - alone).to.be.below(200);
    const joined = performance.now();
    const j4 = committer.submit(job('j4'));
    await new Promise((r) => setTimeout(r, 20));
    await Promise.all([j4, committer.submit({ ...job('j5'), reply: true })]);
    expect(performance.now() - joined).to.be.below(250);
    expect(calls.slice(1)).to.deep.equal([['j3'], ['j4', 'j5']]);
    expect(await storedIds()).to.deep.equal(['j1-0', 'j2-0', 'j3-0', 'j4-0', 'j5-0']);
  });

  it('resolves a job only once its events are committed, visible to another connection', async () => {
    const committer = create();
    const outcome = await committer.submit(job('j1', 3));
    expect(outcome.stored).to.equal(3);
    // Read through a second handle, as the API would.
    const reader = openSqliteStore({ dataDir: dir });
    try {
      expect(await reader.committedJobIds(['j1'])).to.deep.equal(new Set(['j1']));
      expect((await reader.counts({ jobIds: [], topicsLimit: 10 })).uniqueProcessed).to.equal(3);
    } finally {
      await reader.close();
    }
  });

  it('splits batches at maxJobs', async () => {
    const committer = create({ maxJobs: 2 });
    await Promise.all(['j1', 'j2', 'j3', 'j4', 'j5'].map((id) => committer.submit(job(id))));
    expect(calls).to.deep.equal([['j1', 'j2'], ['j3', 'j4'], ['j5']]);
    expect(await storedIds()).to.have.length(5);
  });

  it('splits batches at maxEvents, and commits a job bigger than maxEvents on its own', async () => {
    const committer = create({ maxEvents: 3 });
    await Promise.all([
      committer.submit(job('a', 1)),
      committer.submit(job('b', 1)),
      committer.submit(job('c', 1)),
      committer.submit(job('d', 2)),
      committer.submit(job('e', 5)),
      committer.submit(job('f', 1)),
    ]);
    expect(calls).to.deep.equal([['a', 'b', 'c'], ['d'], ['e'], ['f']]);
    expect(await storedIds()).to.have.length(11);
  });

  it('keeps the jobs pending, not failed, while the store fails, and commits them once it recovers', async function () {
    this.timeout(20_000);
    failuresLeft = 3;
    const health: (string | null)[] = [];
    const committer = create({ onHealth: (problem) => health.push(problem) });
    watched = [track(committer.submit(job('j1'))), track(committer.submit(job('j2')))];

    await waitFor(() => calls.length >= 1, { timeoutMs: 10_000, what: 'a failed commit' });
    // Most likely submitted while the store fails; committed in any case.
    const late = track(committer.submit(job('j3')));

    await Promise.all([...watched, late].map((t) => t.promise));
    // Each retry found the first jobs still pending: three failures rejected nothing.
    expect(statesAtCall.slice(0, 4)).to.deep.equal([
      ['pending', 'pending'],
      ['pending', 'pending'],
      ['pending', 'pending'],
      ['pending', 'pending'],
    ]);
    expect(calls[3]).to.include.members(['j1', 'j2']);
    expect([...watched, late].map((t) => t.state)).to.deep.equal(['resolved', 'resolved', 'resolved']);
    expect([...watched, late].map((t) => t.value?.stored)).to.deep.equal([1, 1, 1]);
    expect(await storedIds()).to.deep.equal(['j1-0', 'j2-0', 'j3-0']);
    expect(committer.stats()).to.include({ lastError: null, jobs: 3 });
    // Told once when it broke and once when it recovered, not at every retry.
    expect(health).to.have.length(2);
    expect(health[0]).to.match(/SQLITE_FULL/);
    expect(health[1]).to.equal(null);
  });

  it('says what fails while it fails', async function () {
    this.timeout(20_000);
    failuresLeft = Number.POSITIVE_INFINITY;
    const committer = create();
    watched = [track(committer.submit(job('j1')))];
    await waitFor(() => calls.length >= 2, { timeoutMs: 10_000, what: 'two failed commits' });
    expect(watched[0]!.state).to.equal('pending');
    expect(committer.stats()).to.include({ commits: 0, jobs: 0 });
    expect(committer.stats().lastError).to.match(/SQLITE_FULL/);
  });

  it('rejects the waiting jobs with CommitterClosedError when closed while the store fails', async function () {
    this.timeout(20_000);
    failuresLeft = Number.POSITIVE_INFINITY;
    const committer = create();
    const pending = [track(committer.submit(job('j1'))), track(committer.submit(job('j2')))];
    await waitFor(() => calls.length >= 1, { timeoutMs: 10_000, what: 'a failed commit' });
    expect(pending.map((t) => t.state)).to.deep.equal(['pending', 'pending']);

    const callsBeforeClose = calls.length;
    await committer.close();
    await Promise.all(pending.map((t) => t.promise));
    for (const t of pending) {
      expect(t.state).to.equal('rejected');
      expect(t.error).to.be.instanceOf(CommitterClosedError);
    }
    // close() tries once more before giving up.
    expect(calls.length).to.equal(callsBeforeClose + 1);
    expect(await storedIds()).to.deep.equal([]);

    let refused: unknown;
    await committer.submit(job('j3')).catch((err: unknown) => (refused = err));
    expect(refused).to.be.instanceOf(CommitterClosedError);
  });

  it('commits what is waiting when closed with a working store', async () => {
    const committer = create({ lingerMs: 60_000 });
    const waiting = [track(committer.submit(job('j1'))), track(committer.submit(job('j2')))];
    await committer.close();
    await Promise.all(waiting.map((t) => t.promise));
    expect(waiting.map((t) => t.state)).to.deep.equal(['resolved', 'resolved']);
    expect(calls).to.deep.equal([['j1', 'j2']]);
    expect(await storedIds()).to.deep.equal(['j1-0', 'j2-0']);
  });

  describe('with the write lock held by another writer', () => {
    let holder: Database.Database;
    let busyStore: SqliteStore;
    let attempts: number;
    const busyCommit = (jobs: readonly JobToCommit[]) => {
      attempts++;
      return busyStore.commitJobs(jobs);
    };
    beforeEach(() => {
      // The worker's own setting: SQLite never waits for the lock inside the call.
      busyStore = openSqliteStore({ dataDir: dir, busyTimeoutMs: 0 });
      holder = new Database(path.join(dir, STORE_FILE));
      holder.exec('BEGIN IMMEDIATE');
      attempts = 0;
    });
    afterEach(async () => {
      if (holder.inTransaction) holder.exec('ROLLBACK');
      holder.close();
      await busyStore.close();
    });

    it('retries within milliseconds, quietly, and commits as soon as the lock is free', async () => {
      const health: (string | null)[] = [];
      const committer = create({ commit: busyCommit, busyPatienceMs: 10_000, onHealth: (p) => health.push(p) });
      const t = track(committer.submit(job('j1', 2)));
      await waitFor(() => attempts >= 10, { what: 'ten quick retries', timeoutMs: 2000 });
      expect(t.state).to.equal('pending');
      expect(health, 'a lock held briefly is not a fault').to.deep.equal([]);
      const released = performance.now();
      holder.exec('ROLLBACK');
      await t.promise;
      expect(t.state).to.equal('resolved');
      expect(performance.now() - released).to.be.below(500);
      expect(await storedIds()).to.deep.equal(['j1-0', 'j1-1']);
    });

    it('lets groups gather for longer while another writer contends for the lock', async () => {
      const committer = create({ commit: busyCommit, lingerMs: 1, contendedLingerMs: 80 });
      const first = track(committer.submit(job('j1')));
      await waitFor(() => attempts >= 2, { what: 'a busy retry', timeoutMs: 2000 });
      holder.exec('ROLLBACK');
      await first.promise;
      const before = attempts;
      const started = performance.now();
      const j2 = committer.submit(job('j2'));
      // Alone, j2 would be committed 1 ms after it came; contended, j3 joins its group.
      await new Promise((r) => setTimeout(r, 20));
      const j3 = committer.submit(job('j3'));
      await Promise.all([j2, j3]);
      expect(attempts - before, 'one commit for both').to.equal(1);
      expect(performance.now() - started).to.be.at.least(70);
      expect(await storedIds()).to.deep.equal(['j1-0', 'j2-0', 'j3-0']);
      // A job whose producer waits for its results does not wait for company.
      const waited = performance.now();
      await committer.submit({ ...job('j4'), reply: true });
      expect(performance.now() - waited).to.be.below(60);
    });

    it('reports the store as failing once the lock stays taken past its patience', async () => {
      const health: (string | null)[] = [];
      const committer = create({ commit: busyCommit, busyPatienceMs: 50, onHealth: (p) => health.push(p) });
      const t = track(committer.submit(job('j1')));
      await waitFor(() => health.length === 1, { what: 'a health report', timeoutMs: 5000 });
      expect(health[0]).to.match(/busy|locked/i);
      expect(t.state).to.equal('pending');
      holder.exec('ROLLBACK');
      await waitFor(() => t.state === 'resolved', { what: 'the commit after the lock is released', timeoutMs: 10_000 });
      expect(health).to.deep.equal([health[0], null]);
    });
  });

  it('reports a redelivered job as such, through the store', async () => {
    const committer = create();
    await committer.submit(job('j1', 2));
    const again = await committer.submit(job('j1', 2));
    expect(again).to.deep.include({ id: 'j1', stored: 0, dropped: 0, redelivered: true });
    expect(await store.counts({ jobIds: [], topicsLimit: 10 })).to.deep.include({ received: 2, uniqueProcessed: 2, jobs: 1, redeliveries: 1 });
  });
});
