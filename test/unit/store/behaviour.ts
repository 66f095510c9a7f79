// What every store adapter guarantees, run against each (sqlite.test.ts, postgres.test.ts):
// exactly-once effect per (topic, event_id), a verdict per event, redelivered jobs
// recognised with the same answer, counts that agree with what is stored, across handles
// and reopenings.
import { expect } from 'chai';
import type { Event } from '../../../shared/schema.js';
import type { JobOutcome, Store } from '../../../shared/store/port.js';

export type StoreHarness = {
  /** A new handle on this test's store (another worker, or the same one reopened). */
  open(): Promise<Store>;
  /** A handle that judges expiry by this retention and clock. */
  openRetaining(opts: { retentionMs: number; clock: () => number }): Promise<Store>;
};

export function ev(topic: string, eventId: string, payload: Record<string, unknown> = {}): Event {
  return { topic, event_id: eventId, timestamp: '2025-10-24T00:00:00Z', source: 'unit', payload };
}

export const all = (store: Store, topic?: string) => store.listEvents({ topic, after: 0, limit: 1_000_000 });
export const identities = async (store: Store, topic?: string) => (await all(store, topic)).map((e) => `${e.topic}/${e.event_id}`);
/** An outcome without its per-event results. */
const summary = (outcome: JobOutcome | undefined) => {
  const { id, stored, dropped, conflicts, redelivered } = outcome!;
  return { id, stored, dropped, conflicts, redelivered };
};
const noJobs = { jobIds: [], topicsLimit: 100 };

/** Registers the shared tests in the calling describe(); `h.open` is valid inside tests only. */
export function storeBehaviour(h: StoreHarness): void {
  const open = () => h.open();

  it('stores an event with its five fields, a seq and processed_at', async () => {
    const store = await open();
    const before = Date.now();
    const [outcome] = await store.commitJobs([{ id: 'j1', events: [ev('orders', 'e1', { amount: 12 })] }]);
    expect(summary(outcome)).to.deep.equal({ id: 'j1', stored: 1, dropped: 0, conflicts: 0, redelivered: false });
    const [stored, ...rest] = await all(store);
    expect(rest).to.deep.equal([]);
    expect(stored).to.deep.include({
      topic: 'orders',
      event_id: 'e1',
      timestamp: '2025-10-24T00:00:00Z',
      source: 'unit',
      payload: { amount: 12 },
    });
    expect(stored!.seq).to.be.a('number').and.at.least(1);
    expect(new Date(stored!.processed_at).toISOString()).to.equal(stored!.processed_at);
    expect(Date.parse(stored!.processed_at)).to.be.within(before, Date.now());
  });

  it('stores one copy of an event sent twice in one job, counting one duplicate', async () => {
    const store = await open();
    const [outcome] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1'), ev('t', 'e1')] }]);
    expect(summary(outcome)).to.deep.equal({ id: 'j1', stored: 1, dropped: 1, conflicts: 0, redelivered: false });
    expect(await identities(store)).to.deep.equal(['t/e1']);
    expect(await store.counts(noJobs)).to.deep.include({ received: 2, uniqueProcessed: 1, duplicateDropped: 1, jobs: 1 });
  });

  it('stores one copy of an event sent in two jobs, counting one duplicate', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1')] }]);
    const [outcome] = await store.commitJobs([{ id: 'j2', events: [ev('t', 'e1'), ev('t', 'e2')] }]);
    expect(summary(outcome)).to.deep.equal({ id: 'j2', stored: 1, dropped: 1, conflicts: 0, redelivered: false });
    expect(await identities(store)).to.deep.equal(['t/e1', 't/e2']);
    expect(await store.counts(noJobs)).to.deep.include({ received: 3, uniqueProcessed: 2, duplicateDropped: 1, jobs: 2 });
  });

  it('recognises the two copies in two jobs of one commit', async () => {
    const store = await open();
    const outcomes = await store.commitJobs([
      { id: 'j1', events: [ev('t', 'e1')] },
      { id: 'j2', events: [ev('t', 'e1')] },
    ]);
    expect(outcomes.map((o) => [o.stored, o.dropped])).to.deep.equal([
      [1, 0],
      [0, 1],
    ]);
    expect(await identities(store)).to.deep.equal(['t/e1']);
  });

  it('changes nothing when a committed job is committed again', async () => {
    const store = await open();
    const job = { id: 'j1', events: [ev('t', 'e1'), ev('t', 'e2'), ev('t', 'e1')] };
    await store.commitJobs([job]);
    const counts = await store.counts(noJobs);
    const events = await all(store);

    const [again] = await store.commitJobs([job]);
    expect(summary(again)).to.deep.equal({ id: 'j1', stored: 0, dropped: 0, conflicts: 0, redelivered: true });
    // Only the redelivery itself is counted: the system's own retry, not a producer's copy.
    expect(await store.counts(noJobs)).to.deep.equal({ ...counts, redeliveries: 1 });
    expect(await all(store)).to.deep.equal(events);
    expect(counts).to.deep.include({ received: 3, uniqueProcessed: 2, duplicateDropped: 1, jobs: 1 });
  });

  it('recognises a job id given twice in one commit', async () => {
    const store = await open();
    const job = { id: 'j1', events: [ev('t', 'e1')] };
    const outcomes = await store.commitJobs([job, job]);
    expect(outcomes.map(summary)).to.deep.equal([
      { id: 'j1', stored: 1, dropped: 0, conflicts: 0, redelivered: false },
      { id: 'j1', stored: 0, dropped: 0, conflicts: 0, redelivered: true },
    ]);
    expect(await store.counts(noJobs)).to.deep.include({ received: 1, uniqueProcessed: 1, duplicateDropped: 0, jobs: 1 });
  });

  it('takes the same event_id under two topics for two events', async () => {
    const store = await open();
    const [outcome] = await store.commitJobs([{ id: 'j1', events: [ev('a', 'e1'), ev('b', 'e1')] }]);
    expect(outcome).to.include({ stored: 2, dropped: 0 });
    expect(await identities(store)).to.deep.equal(['a/e1', 'b/e1']);
  });

  it('does not confuse identities that concatenate alike', async () => {
    const store = await open();
    const [outcome] = await store.commitJobs([{ id: 'j1', events: [ev('ab', 'c'), ev('a', 'bc')] }]);
    expect(outcome).to.include({ stored: 2, dropped: 0 });
  });

  it('tells apart ids that differ only at their start, at their end, or in length', async () => {
    // A store may key ids by parts of them (SQLite: a hash of all but the end, then the end).
    const ids = ['a-0001', 'b-0001', 'a-0002', 'a-00010', '7', '70', '07', 'x', 'aaaa{', 'aaaa|', 'aaaa~', 'tail-é', 'tail-ü', 'tail-\u{1F600}'];
    const store = await open();
    const [first] = await store.commitJobs([{ id: 'j1', events: ids.map((id) => ev('t', id, { id })) }]);
    expect(first).to.include({ stored: ids.length, dropped: 0 });
    const [again] = await store.commitJobs([{ id: 'j2', events: [...ids].reverse().map((id) => ev('t', id, { id })) }]);
    expect(again).to.include({ stored: 0, dropped: ids.length, conflicts: 0 });
    for (const id of ids) expect((await store.getEvent('t', id))?.event.payload).to.deep.equal({ id });
  });

  it('stores growing ids once each, with copies among them, across many commits', async () => {
    const store = await open();
    const id = (n: number) => `ord-${String(n).padStart(12, '0')}`;
    let stored = 0;
    let dropped = 0;
    for (let c = 0; c < 10; c++) {
      const events = Array.from({ length: 500 }, (_, i) => ev(`t${i % 3}`, id(c * 500 + i)));
      // Copies of the previous commit's ids and of this one's.
      const copies = Array.from({ length: 100 }, (_, i) => ev(`t${i % 3}`, id(Math.max(0, c - 1) * 500 + i)));
      const [outcome] = await store.commitJobs([{ id: `j${c}`, events: [...events, ...copies] }]);
      stored += outcome!.stored;
      dropped += outcome!.dropped;
    }
    expect([stored, dropped]).to.deep.equal([5000, 1000]);
    const keys = await identities(store);
    expect(new Set(keys).size).to.equal(5000);
    expect(await store.counts(noJobs)).to.deep.include({ uniqueProcessed: 5000, duplicateDropped: 1000 });
  });

  it('keeps the first copy: later copies do not replace its fields', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { v: 'first' })] }]);
    await store.commitJobs([
      { id: 'j2', events: [{ ...ev('t', 'e1', { v: 'second' }), timestamp: '2030-01-01T00:00:00Z', source: 'other' }] },
    ]);
    const [only, ...rest] = await all(store);
    expect(rest).to.deep.equal([]);
    expect(only).to.deep.include({ payload: { v: 'first' }, timestamp: '2025-10-24T00:00:00Z', source: 'unit' });
  });

  it('numbers events in commit order', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'c'), ev('t', 'a')] }]);
    await store.commitJobs([
      { id: 'j2', events: [ev('u', 'b')] },
      { id: 'j3', events: [ev('t', 'z'), ev('t', 'a'), ev('u', 'y')] },
    ]);
    const events = await all(store);
    expect(events.map((e) => e.event_id)).to.deep.equal(['c', 'a', 'b', 'z', 'y']);
    const seqs = events.map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).to.be.above(seqs[i - 1]!);
  });

  it('lists by topic, after a cursor, up to a limit', async () => {
    const store = await open();
    const events: Event[] = [];
    for (let i = 0; i < 10; i++) events.push(ev(i % 2 === 0 ? 'even' : 'odd', `e${i}`));
    await store.commitJobs([{ id: 'j1', events }]);

    const even = await store.listEvents({ topic: 'even', after: 0, limit: 100 });
    expect(even.map((e) => e.event_id)).to.deep.equal(['e0', 'e2', 'e4', 'e6', 'e8']);
    expect(await store.listEvents({ topic: 'none', after: 0, limit: 100 })).to.deep.equal([]);

    const page1 = await store.listEvents({ topic: 'even', after: 0, limit: 2 });
    expect(page1.map((e) => e.event_id)).to.deep.equal(['e0', 'e2']);
    const page2 = await store.listEvents({ topic: 'even', after: page1[1]!.seq, limit: 2 });
    expect(page2.map((e) => e.event_id)).to.deep.equal(['e4', 'e6']);
    const page3 = await store.listEvents({ topic: 'even', after: page2[1]!.seq, limit: 2 });
    expect(page3.map((e) => e.event_id)).to.deep.equal(['e8']);

    const everything = await store.listEvents({ after: 0, limit: 3 });
    expect(everything.map((e) => e.event_id)).to.deep.equal(['e0', 'e1', 'e2']);
    const rest = await store.listEvents({ after: everything[2]!.seq, limit: 100 });
    expect(rest.map((e) => e.event_id)).to.deep.equal(['e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9']);
    expect(await store.listEvents({ after: rest[6]!.seq, limit: 100 })).to.deep.equal([]);
  });

  it('lists events as JSON text byte for byte what JSON.stringify makes of listEvents, with or without a topic', async () => {
    const store = await open();
    const payloads: Record<string, unknown>[] = [
      {},
      { text: 'é 😀 \u0001\n\t "quoted" \\ back </script>', empty: '' },
      { numbers: [0, -0, 0.1, 1e21, 1.5e-7, -42, 9007199254740991], flags: [true, false, null] },
      { b: 1, 2: 'two', 1: 'one', a: { z: [[], [{}]], y: 'deep' } },
      JSON.parse('{"__proto__": {"x": 1}, "constructor": "c"}') as Record<string, unknown>,
    ];
    const events = payloads.map((p, i) => ({ ...ev(i % 2 === 0 ? 'even "q"' : 'odd/é', `id ${i} "\\"`, p), source: `src\t${i}` }));
    await store.commitJobs([{ id: 'j1', events: events.slice(0, 3) }]);
    await new Promise((r) => setTimeout(r, 5));
    await store.commitJobs([{ id: 'j2', events: events.slice(3) }, { id: 'j3', events: [{ ...ev('t', 'x'), timestamp: '2025-10-24T01:00:00+02:00' }] }]);
    for (const q of [{ after: 0, limit: 100 }, { after: 1, limit: 3 }, { topic: 'even "q"', after: 0, limit: 100 }, { topic: 'odd/é', after: 0, limit: 1 }]) {
      const objects = await store.listEvents(q);
      expect(objects.length).to.be.above(0);
      const page = await store.listEventsJson({ topics: q.topic === undefined ? undefined : [q.topic], after: q.after, limit: q.limit });
      expect(page.events).to.deep.equal(objects.map((e) => ({ seq: e.seq, topic: e.topic, json: JSON.stringify(e) })));
    }
    expect(await store.listEventsJson({ topics: ['none'], after: 0, limit: 10 })).to.deep.equal({ events: [], through: 6 });
  });

  it('lists events of several topics in seq order, and says how far each page reaches', async () => {
    const store = await open();
    // seqs 1..12: topics a, b, c in turn
    const topics = ['a', 'b', 'c'];
    await store.commitJobs([{ id: 'j1', events: Array.from({ length: 12 }, (_, i) => ev(topics[i % 3]!, `e${i}`)) }]);
    const seqsOf = (p: { events: { seq: number; topic: string }[] }) => p.events.map((e) => `${e.topic}${e.seq}`);
    // Short pages reach the newest seq of any topic: the cursor may move past the c's.
    const ab = await store.listEventsJson({ topics: ['a', 'b'], after: 0, limit: 100 });
    expect(seqsOf(ab)).to.deep.equal(['a1', 'b2', 'a4', 'b5', 'a7', 'b8', 'a10', 'b11']);
    expect(ab.through).to.equal(12);
    // A full page reaches its last event only: what follows it is unread.
    const full = await store.listEventsJson({ topics: ['a', 'c'], after: 1, limit: 3 });
    expect(seqsOf(full)).to.deep.equal(['c3', 'a4', 'c6']);
    expect(full.through).to.equal(6);
    expect(seqsOf(await store.listEventsJson({ topics: ['b'], after: 5, limit: 2 }))).to.deep.equal(['b8', 'b11']);
    expect(await store.listEventsJson({ topics: ['b'], after: 5, limit: 2 })).to.include({ through: 11 });
    expect(await store.listEventsJson({ topics: ['b'], after: 11, limit: 2 })).to.deep.equal({ events: [], through: 12 });
    expect(await store.listEventsJson({ after: 12, limit: 5 })).to.deep.equal({ events: [], through: 12 });
    // A cursor past the end stays where it is.
    expect(await store.listEventsJson({ topics: ['a', 'b'], after: 40, limit: 5 })).to.deep.equal({ events: [], through: 40 });
    expect((await store.listEventsJson({ after: 0, limit: 100 })).events).to.have.length(12);
  });

  it('counts received as unique plus dropped, with sorted topics and their counts', async () => {
    const store = await open();
    expect(await store.counts(noJobs)).to.deep.equal({
      received: 0,
      uniqueProcessed: 0,
      duplicateDropped: 0,
      conflicts: 0,
      expired: 0,
      erased: 0,
      redeliveries: 0,
      jobs: 0,
      topicsCount: 0,
      topics: [],
      committed: new Set(),
    });
    await store.commitJobs([{ id: 'j1', events: [ev('zeta', '1'), ev('alpha', '1'), ev('Mid', '1'), ev('zeta', '1')] }]);
    await store.commitJobs([{ id: 'j2', events: [ev('alpha', '2'), ev('alpha', '1'), ev('zeta', '2')] }]);
    const counts = await store.counts(noJobs);
    expect(counts).to.deep.include({ received: 7, uniqueProcessed: 5, duplicateDropped: 2, jobs: 2 });
    expect(counts.received).to.equal(counts.uniqueProcessed + counts.duplicateDropped);
    expect(counts.topics).to.deep.equal([
      { topic: 'Mid', events: 1, dropped: 0, conflicts: 0 },
      { topic: 'alpha', events: 2, dropped: 1, conflicts: 0 },
      { topic: 'zeta', events: 2, dropped: 1, conflicts: 0 },
    ]);
    const names = counts.topics.map((t) => t.topic);
    expect(names).to.deep.equal([...names].sort());
    expect(counts.uniqueProcessed).to.equal((await all(store)).length);
  });

  it('tells which job ids it has committed', async () => {
    const store = await open();
    await store.commitJobs([
      { id: 'p-1-a', events: [ev('t', '1')] },
      { id: 'p-1-b', events: [ev('t', '1')] },
    ]);
    expect(await store.committedJobIds([])).to.deep.equal(new Set());
    expect(await store.committedJobIds(['p-1-a', 'p-1-x', 'p-1-b', 'p-1-a'])).to.deep.equal(new Set(['p-1-a', 'p-1-b']));
    expect(await store.committedJobIds(['p-1-x'])).to.deep.equal(new Set());
  });

  it('leaves nothing behind when a commit fails', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j0', events: [ev('t', 'e0')] }]);
    const counts = await store.counts(noJobs);
    const events = await all(store);
    // A payload JSON cannot serialize makes the commit throw halfway through.
    const broken = { ...ev('t', 'e3'), payload: { n: 1n } as Record<string, unknown> };
    let failed: unknown;
    await store
      .commitJobs([
        { id: 'j1', events: [ev('t', 'e1')] },
        { id: 'j2', events: [ev('t', 'e2'), broken] },
      ])
      .catch((err: unknown) => (failed = err));
    expect(failed).to.be.instanceOf(Error);
    expect(await store.counts(noJobs)).to.deep.equal(counts);
    expect(await all(store)).to.deep.equal(events);
    expect(await store.committedJobIds(['j1', 'j2'])).to.deep.equal(new Set());
    // Nothing was half-claimed: the same events commit normally afterwards.
    const [outcome] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1'), ev('t', 'e2'), ev('t', 'e3')] }]);
    expect(summary(outcome)).to.deep.equal({ id: 'j1', stored: 3, dropped: 0, conflicts: 0, redelivered: false });
  });

  it('keeps events, counts, job ids and dedup across close and reopen', async () => {
    const first = await open();
    await first.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { n: 1 }), ev('u', 'e2'), ev('t', 'e1')] }]);
    const events = await all(first);
    const counts = await first.counts(noJobs);
    await first.close();

    const reopened = await open();
    expect(await all(reopened)).to.deep.equal(events);
    expect(await reopened.counts(noJobs)).to.deep.equal(counts);
    expect(await reopened.committedJobIds(['j1'])).to.deep.equal(new Set(['j1']));
    // Dedup is permanent: a copy arriving after a restart is still dropped.
    const [late] = await reopened.commitJobs([{ id: 'j2', events: [ev('t', 'e1', { n: 2 })] }]);
    expect(late).to.include({ stored: 0, dropped: 1 });
    const [redelivered] = await reopened.commitJobs([{ id: 'j1', events: [ev('t', 'e1')] }]);
    expect(redelivered).to.include({ redelivered: true });
    // New events continue after the old ones.
    await reopened.commitJobs([{ id: 'j3', events: [ev('t', 'e3')] }]);
    const after = await all(reopened);
    expect(after.at(-1)!.seq).to.be.above(events.at(-1)!.seq);
    expect(after.at(0)!.payload).to.deep.equal({ n: 1 });
  });

  it('stores a payload exactly, a "__proto__" key included', async () => {
    const store = await open();
    const payload = JSON.parse('{"__proto__": {"admin": true}, "n": 1.5, "s": "é😀\\u0000", "a": [null]}') as Record<
      string,
      unknown
    >;
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1', payload)] }]);
    const got = (await all(store))[0]!.payload as Record<string, unknown>;
    expect(Object.keys(got)).to.deep.equal(['__proto__', 'n', 's', 'a']);
    expect(JSON.stringify(got)).to.equal(JSON.stringify(payload));
    expect(Object.getPrototypeOf(got)).to.equal(Object.prototype);
  });

  it('gives each event its verdict and the seq of the stored copy, copies within one job included', async () => {
    const store = await open();
    const [first] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'a', { n: 1 }), ev('t', 'a', { n: 1 }), ev('t', 'b')] }]);
    const [a, copy, b] = first!.results;
    expect([a!.status, copy!.status, b!.status]).to.deep.equal(['stored', 'duplicate', 'stored']);
    expect(copy!.seq).to.equal(a!.seq);
    expect(b!.seq).to.be.above(a!.seq);
    const stored = await all(store);
    expect(stored.map((e) => e.seq)).to.deep.equal([a!.seq, b!.seq]);
  });

  it('tells a conflicting copy from a duplicate: payload, source and timestamp, compared as values', async () => {
    const store = await open();
    const base = { ...ev('t', 'x', { a: 1, b: { c: [1, 2], d: 'e' } }), timestamp: '2025-10-24T00:00:00Z' };
    await store.commitJobs([{ id: 'j1', events: [base] }]);
    const same = [
      { ...base, payload: { b: { d: 'e', c: [1, 2] }, a: 1 } }, // key order
      { ...base, timestamp: '2025-10-24T07:00:00+07:00' }, // the same instant
      { ...base, timestamp: '2025-10-24T00:00:00.000Z' },
      { ...base, timestamp: '2025-10-24T00:00:00' }, // no offset means UTC
    ];
    const differ = [
      { ...base, payload: { a: 2, b: { c: [1, 2], d: 'e' } } },
      { ...base, payload: { a: 1, b: { c: [2, 1], d: 'e' } } }, // array order matters
      { ...base, source: 'elsewhere' },
      { ...base, timestamp: '2025-10-24T00:00:00.001Z' },
      { ...base, timestamp: '2025-10-24T00:00:00+01:00' },
    ];
    const [outcome] = await store.commitJobs([{ id: 'j2', events: [...same, ...differ] }]);
    expect(outcome!.results.map((r) => r.status)).to.deep.equal([
      ...same.map(() => 'duplicate'),
      ...differ.map(() => 'conflict'),
    ]);
    expect(summary(outcome)).to.deep.equal({ id: 'j2', stored: 0, dropped: 9, conflicts: 5, redelivered: false });
    const counts = await store.counts(noJobs);
    expect(counts).to.deep.include({ received: 10, uniqueProcessed: 1, duplicateDropped: 9, conflicts: 5 });
    expect(counts.topics).to.deep.equal([{ topic: 't', events: 1, dropped: 9, conflicts: 5 }]);
    // The first copy wins whatever the copies say.
    expect((await all(store))[0]).to.deep.include({ source: 'unit', payload: base.payload, timestamp: base.timestamp });
  });

  it('answers a redelivered job with the results it had the first time', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j0', events: [ev('t', 'old', { v: 1 })] }]);
    const job = { id: 'j1', events: [ev('t', 'new'), ev('t', 'old', { v: 1 }), ev('t', 'new'), ev('t', 'old', { v: 2 }), ev('t', 'other')] };
    const [first] = await store.commitJobs([job]);
    const counts = await store.counts(noJobs);
    const [again] = await store.commitJobs([job]);
    expect(first!.results.map((r) => r.status)).to.deep.equal(['stored', 'duplicate', 'duplicate', 'conflict', 'stored']);
    expect(again!.results).to.deep.equal(first!.results);
    expect(again).to.include({ redelivered: true, stored: 0, dropped: 0 });
    const after = await store.counts(noJobs);
    expect(after).to.deep.equal({ ...counts, redeliveries: counts.redeliveries + 1 });
  });

  it('explains one identity: its stored copy, every copy, conflicts, first and last seen', async () => {
    const store = await open();
    expect(await store.getEvent('t', 'a/b c')).to.equal(undefined);
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'a/b c', { n: 1 }), ev('u', 'a/b c')] }]);
    const once = await store.getEvent('t', 'a/b c');
    expect(once).to.deep.include({ copies: 1, conflicts: 0 });
    expect(once!.first_seen_at).to.equal(once!.last_seen_at);
    expect(once!.event).to.deep.include({ topic: 't', event_id: 'a/b c', payload: { n: 1 } });
    await new Promise((r) => setTimeout(r, 5));
    await store.commitJobs([{ id: 'j2', events: [ev('t', 'a/b c', { n: 1 }), ev('t', 'a/b c', { n: 2 })] }]);
    const thrice = await store.getEvent('t', 'a/b c');
    expect(thrice).to.deep.include({ copies: 3, conflicts: 1, first_seen_at: once!.first_seen_at });
    expect(Date.parse(thrice!.last_seen_at)).to.be.above(Date.parse(thrice!.first_seen_at));
    expect(thrice!.event).to.deep.equal(once!.event);
    // The same id under another topic is another event, with its own history.
    expect(await store.getEvent('u', 'a/b c')).to.deep.include({ copies: 1, conflicts: 0 });
    expect(await store.getEvent('t', 'a/b')).to.equal(undefined);
  });

  it('pages through topics by name, and counts them all', async () => {
    const store = await open();
    const events = Array.from({ length: 25 }, (_, i) => ev(`topic-${String(i).padStart(2, '0')}`, 'e'));
    await store.commitJobs([{ id: 'j1', events: [...events, ev('topic-03', 'e')] }]);
    const page1 = await store.listTopics({ limit: 10 });
    expect(page1.map((t) => t.topic)).to.deep.equal(events.slice(0, 10).map((e) => e.topic));
    expect(page1[3]).to.deep.equal({ topic: 'topic-03', events: 1, dropped: 1, conflicts: 0 });
    const page3 = await store.listTopics({ after: 'topic-19', limit: 10 });
    expect(page3.map((t) => t.topic)).to.deep.equal(events.slice(20).map((e) => e.topic));
    const counts = await store.counts({ jobIds: [], topicsLimit: 5 });
    expect(counts.topicsCount).to.equal(25);
    expect(counts.topics).to.have.length(5);
  });

  it('reads counts and committed job ids as of one moment', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'p-2-a', events: [ev('t', '1'), ev('t', '2')] }]);
    const counts = await store.counts({ jobIds: ['p-2-a', 'p-1-b'], topicsLimit: 10 });
    expect(counts.committed).to.deep.equal(new Set(['p-2-a']));
    expect(counts).to.deep.include({ received: 2, jobs: 1 });
  });

  it('says the highest seq readers can see', async () => {
    const store = await open();
    expect(await store.lastSeq()).to.equal(0);
    await store.commitJobs([{ id: 'j1', events: [ev('t', '1'), ev('t', '2')] }]);
    const events = await all(store);
    expect(await store.lastSeq()).to.equal(events.at(-1)!.seq);
  });

  describe('retention and erasure', () => {
    const RETENTION = 60_000;
    /** The retaining handles' clock: real time until a test sets it. */
    let now: number | undefined;
    const clock = () => now ?? Date.now();
    const retaining = () => h.openRetaining({ retentionMs: RETENTION, clock });
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const balanced = (c: { received: number; uniqueProcessed: number; duplicateDropped: number }) =>
      expect(c.received, 'received == unique_processed + duplicate_dropped').to.equal(c.uniqueProcessed + c.duplicateDropped);

    beforeEach(() => {
      now = undefined;
    });

    it('serves no event older than the retention, before and after the sweep, and keeps its identity', async () => {
      const store = await retaining();
      const [first] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'a1', { v: 1 }), ev('t', 'a2'), ev('u', 'a3')] }]);
      await store.commitJobs([{ id: 'j1b', events: [ev('t', 'a1', { v: 1 })] }]);
      await pause(20);
      await store.commitJobs([{ id: 'j2', events: [ev('t', 'b1')] }]);
      const before = await all(store);
      const b1 = before.find((e) => e.event_id === 'b1')!;
      const a1 = before.find((e) => e.event_id === 'a1')!;
      const top = await store.lastSeq();
      expect(await store.expireStep(1000), 'nothing is expired yet').to.equal(0);
      // The clock moves on: a1, a2 and a3 are older than the retention, b1 is not.
      now = Date.parse(b1.processed_at) + RETENTION;

      const check = async (s: Store) => {
        expect((await all(s)).map((e) => e.event_id)).to.deep.equal(['b1']);
        expect((await all(s, 't')).map((e) => e.event_id)).to.deep.equal(['b1']);
        expect((await s.listEvents({ after: 0, limit: 1 })).map((e) => e.event_id)).to.deep.equal(['b1']);
        const page = await s.listEventsJson({ after: 0, limit: 10 });
        expect(page.events.map((e) => e.seq)).to.deep.equal([b1.seq]);
        expect(page.through).to.equal(top);
        expect((await s.listEventsJson({ topics: ['u'], after: 0, limit: 10 })).events).to.deep.equal([]);
        expect(await s.getEvent('t', 'a1')).to.equal(undefined);
        expect(await s.goneReason('t', 'a1')).to.equal('expired');
        expect(await s.goneReason('u', 'a3')).to.equal('expired');
        expect(await s.goneReason('t', 'b1')).to.equal(undefined);
        expect(await s.goneReason('t', 'never')).to.equal(undefined);
        expect((await s.getEvent('t', 'b1'))?.event.event_id).to.equal('b1');
        expect(await s.lastSeq()).to.equal(top);
      };
      await check(store);
      // Before the sweep: a copy of an expired event is a duplicate (never a conflict: its
      // content is no longer served), with the seq of the stored identity.
      const [copy] = await store.commitJobs([{ id: 'j3', events: [ev('t', 'a1', { v: 2 })] }]);
      expect(copy!.results).to.deep.equal([{ status: 'duplicate', seq: a1.seq }]);

      expect(await store.expireStep(2), 'a step deletes at most its limit').to.equal(2);
      expect(await store.expireStep(1000)).to.equal(1);
      expect(await store.expireStep(1000), 'a second sweep finds nothing').to.equal(0);
      await check(store);
      // Another handle, one that keeps everything forever, still knows them as expired.
      await check(await retaining());
      const forever = await open();
      expect(await forever.getEvent('t', 'a1')).to.equal(undefined);
      expect(await forever.goneReason('t', 'a2')).to.equal('expired');
      expect((await all(forever)).map((e) => e.event_id)).to.deep.equal(['b1']);

      // After the sweep: copies are still dropped, exactly, through any handle.
      const [later] = await forever.commitJobs([{ id: 'j4', events: [ev('t', 'a2', { other: true }), ev('u', 'a3'), ev('t', 'c1')] }]);
      expect(later!.results.map((r) => r.status)).to.deep.equal(['duplicate', 'duplicate', 'stored']);
      expect(later!.results[0]!.seq).to.equal(before.find((e) => e.event_id === 'a2')!.seq);
      expect(later!.results[2]!.seq, 'a new event takes a seq never given before').to.equal(top + 1);
      // A redelivered job gets its first answers again.
      const [again] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'a1', { v: 1 }), ev('t', 'a2'), ev('u', 'a3')] }]);
      expect(again).to.deep.include({ redelivered: true, results: first!.results });

      const counts = await store.counts(noJobs);
      expect(counts).to.deep.include({ uniqueProcessed: 5, duplicateDropped: 4, conflicts: 0, expired: 3, erased: 0 });
      balanced(counts);
      expect(await forever.integrityCheck()).to.deep.equal([]);
    });

    it('sweeps the expired events at the head even when all of them are, and never reuses their seqs', async () => {
      const store = await retaining();
      await store.commitJobs([{ id: 'j1', events: [ev('t', 'x'), ev('t', 'y')] }]);
      const top = await store.lastSeq();
      now = Date.now() + 2 * RETENTION;
      expect(await store.expireStep(1000)).to.equal(2);
      expect(await all(store)).to.deep.equal([]);
      expect(await store.lastSeq()).to.equal(top);
      const [o] = await store.commitJobs([{ id: 'j2', events: [ev('t', 'z'), ev('t', 'x')] }]);
      expect(o!.results).to.deep.equal([
        { status: 'stored', seq: top + 1 },
        { status: 'duplicate', seq: top - 1 },
      ]);
    });

    it('keeps identities of every shape exactly once their events are deleted: UUIDs in any case, ids that only look like one', async () => {
      const ids = [
        '0b7e4a1c-3f5d-4c2b-9a8e-1d2c3b4a5f6e',
        '0B7E4A1C-3F5D-4C2B-9A8E-1D2C3B4A5F6E',
        '0b7e4a1c3f5d4c2b9a8e1d2c3b4a5f6e',
        '0b7e4a1c-3f5d-4c2b-9a8e-1d2c3b4a5f6g',
        'a/b c',
        'é✓',
      ];
      // A writer that has committed before these are stored and deleted learns them from the store.
      const early = await retaining();
      await early.commitJobs([{ id: 'j0', events: [ev('z', 'z')] }]);
      const store = await retaining();
      await store.commitJobs([{ id: 'j1', events: ids.map((id) => ev('t', id)) }]);
      const seqs = (await all(store, 't')).map((e) => e.seq);
      now = Date.now() + 2 * RETENTION;
      expect(await store.expireStep(1000)).to.equal(ids.length + 1);
      // Reopened: the new handle knows the deleted keys only from the store.
      const reopened = await retaining();
      for (const id of ids) expect(await reopened.goneReason('t', id), id).to.equal('expired');
      const [o] = await reopened.commitJobs([
        { id: 'j2', events: [...ids.map((id) => ev('t', id)), ev('t', '0b7e4a1c-3f5d-4c2b-9a8e-1d2c3b4a5f6f'), ev('u', ids[0]!)] },
      ]);
      expect(o!.results.slice(0, ids.length)).to.deep.equal(seqs.map((seq) => ({ status: 'duplicate', seq })));
      expect(o!.results.slice(ids.length).map((r) => r.status)).to.deep.equal(['stored', 'stored']);
      const [p] = await early.commitJobs([{ id: 'j3', events: ids.map((id) => ev('t', id)) }]);
      expect(p!.results).to.deep.equal(seqs.map((seq) => ({ status: 'duplicate', seq })));
    });

    it('pages with a cursor past expired and erased events, never looping or skipping', async () => {
      const store = await retaining();
      await store.commitJobs([{ id: 'j1', events: Array.from({ length: 6 }, (_, i) => ev(i % 2 ? 'a' : 'b', `old-${i}`)) }]);
      await pause(20);
      await store.commitJobs([{ id: 'j2', events: Array.from({ length: 8 }, (_, i) => ev(i % 2 ? 'a' : 'b', `new-${i}`)) }]);
      const fresh = (await all(store)).filter((e) => e.event_id.startsWith('new-'));
      now = Date.parse(fresh[0]!.processed_at) + RETENTION;
      await store.eraseEvent('a', 'new-3');
      await store.eraseEvent('b', 'new-6');
      const expected = fresh.filter((e) => !['new-3', 'new-6'].includes(e.event_id));
      const pageThrough = async (topic?: string) => {
        const seen: number[] = [];
        for (let after = 0, pages = 0; pages < 50; pages++) {
          const rows = await store.listEvents({ topic, after, limit: 3 });
          if (rows.length === 0) return seen;
          seen.push(...rows.map((e) => e.seq));
          after = rows.at(-1)!.seq;
        }
        throw new Error('paging did not end');
      };
      for (const sweep of [false, true]) {
        if (sweep) expect(await store.expireStep(1000)).to.equal(6);
        expect(await pageThrough(), `sweep: ${sweep}`).to.deep.equal(expected.map((e) => e.seq));
        expect(await pageThrough('a')).to.deep.equal(expected.filter((e) => e.topic === 'a').map((e) => e.seq));
        const json: number[] = [];
        for (let after = 0; ; ) {
          const page = await store.listEventsJson({ topics: ['a', 'b'], after, limit: 4 });
          json.push(...page.events.map((e) => e.seq));
          if (page.through === after) break;
          after = page.through;
        }
        expect(json).to.deep.equal(expected.map((e) => e.seq));
      }
    });

    it('deletes nothing in the background without a retention', async () => {
      const store = await open();
      await store.commitJobs([{ id: 'j1', events: [ev('t', 'x')] }]);
      expect(await store.expireStep(1000)).to.equal(0);
      expect(await identities(store)).to.deep.equal(['t/x']);
    });

    it('erases an event: gone from every read, its identity kept, copies still dropped as duplicates', async () => {
      const store = await open();
      await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { secret: 'x' }), ev('t', 'e2')] }]);
      await store.commitJobs([{ id: 'j2', events: [ev('t', 'e1', { secret: 'x' }), ev('t', 'e1', { secret: 'y' })] }]);
      const [e1, e2] = await all(store);
      expect(await store.eraseEvent('t', 'never')).to.deep.equal({ status: 'not_found' });
      expect(await store.eraseEvent('t', 'e1')).to.deep.equal({ status: 'erased', seq: e1!.seq });
      expect(await store.eraseEvent('t', 'e1')).to.deep.equal({ status: 'gone', reason: 'erased' });
      expect(await identities(store)).to.deep.equal(['t/e2']);
      expect(await store.getEvent('t', 'e1')).to.equal(undefined);
      expect(await store.goneReason('t', 'e1')).to.equal('erased');
      expect(await store.goneReason('t', 'e2')).to.equal(undefined);
      // The last event too: its seq is never given again.
      expect(await store.eraseEvent('t', 'e2')).to.deep.equal({ status: 'erased', seq: e2!.seq });
      expect(await store.lastSeq()).to.equal(e2!.seq);
      const [o] = await store.commitJobs([{ id: 'j3', events: [ev('t', 'e1', { secret: 'z' }), ev('t', 'e2'), ev('t', 'e3')] }]);
      expect(o!.results).to.deep.equal([
        { status: 'duplicate', seq: e1!.seq },
        { status: 'duplicate', seq: e2!.seq },
        { status: 'stored', seq: e2!.seq + 1 },
      ]);
      const counts = await store.counts(noJobs);
      expect(counts).to.deep.include({ uniqueProcessed: 3, duplicateDropped: 4, conflicts: 1, erased: 2, expired: 0 });
      balanced(counts);
      const reopened = await open();
      expect(await reopened.goneReason('t', 'e1')).to.equal('erased');
      expect(await reopened.integrityCheck()).to.deep.equal([]);
    });

    it('answers an erasure of an expired event with expired, and deletes it', async () => {
      const store = await retaining();
      await store.commitJobs([{ id: 'j1', events: [ev('t', 'old')] }]);
      now = Date.now() + 2 * RETENTION;
      expect(await store.eraseEvent('t', 'old')).to.deep.equal({ status: 'gone', reason: 'expired' });
      expect(await store.expireStep(1000)).to.equal(0);
      expect(await store.counts(noJobs)).to.deep.include({ expired: 1, erased: 0 });
      expect(await (await open()).goneReason('t', 'old')).to.equal('expired');
    });

    it('lists committed job ids by commit time, a page at a time, and forgets those it is told to', async () => {
      const store = await open();
      for (let i = 0; i < 5; i++) await store.commitJobs([{ id: `j${i}`, events: [ev('t', `e${i}`)] }]);
      await store.commitJobs([
        { id: 'k1', events: [ev('t', 'k1')] },
        { id: 'k0', events: [ev('t', 'k0')] },
      ]);
      const seen: string[] = [];
      let after;
      for (;;) {
        const page = await store.jobsCommittedBefore({ before: Date.now() + 1000, after, limit: 2 });
        if (page.length === 0) break;
        expect(page.length).to.be.at.most(2);
        seen.push(...page.map((j) => j.id));
        after = page.at(-1);
      }
      expect(seen).to.deep.equal(['j0', 'j1', 'j2', 'j3', 'j4', 'k0', 'k1']);
      expect(await store.jobsCommittedBefore({ before: 0, limit: 10 })).to.deep.equal([]);
      expect(await store.forgetJobs(['j1', 'j3', 'nope'])).to.equal(2);
      expect(await store.committedJobIds(['j0', 'j1', 'j3', 'k0'])).to.deep.equal(new Set(['j0', 'k0']));
      // Counts stay: a job forgotten was still committed once.
      expect(await store.counts(noJobs)).to.deep.include({ jobs: 7, uniqueProcessed: 7 });
    });
  });
}
