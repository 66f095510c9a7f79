// GET /topics: every topic, by name, a page at a time, with its counts; /stats lists at
// most 1,000 names and says how many there are.
import { expect } from 'chai';
import { drained, get, publish } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { useCluster } from '../support/suite.js';

const TOPICS = 2500;
const name = (i: number) => `t-${String(i).padStart(5, '0')}`;

describe('GET /topics', function () {
  this.timeout(60_000);
  const shared = useCluster({ workers: 1 });

  before(async () => {
    const events = Array.from({ length: TOPICS }, (_, i) => event({ topic: name(i) }));
    expect((await publish(shared.cluster.baseUrl, events)).status).to.equal(202);
    // t-00000: a copy; t-00001: a copy whose payload differs (a conflict).
    const [first, second] = events as [Record<string, unknown>, Record<string, unknown>];
    expect((await publish(shared.cluster.baseUrl, [first, { ...second, payload: { other: true } }])).status).to.equal(202);
    await drained(shared.cluster.baseUrl, TOPICS + 2);
  });

  it('pages through every topic in name order with next_after, counts included', async () => {
    const seen: any[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const r = await get(shared.cluster.baseUrl, `/topics?limit=1000${after === null ? '' : `&after=${encodeURIComponent(after)}`}`);
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(Object.keys(r.body).sort()).to.deep.equal(['next_after', 'topics']);
      seen.push(...r.body.topics);
      after = r.body.next_after;
      if (after !== null) expect(after).to.equal(r.body.topics.at(-1).topic);
      pages++;
    } while (after !== null);
    expect(pages).to.equal(3);
    expect(seen.map((t) => t.topic)).to.deep.equal(Array.from({ length: TOPICS }, (_, i) => name(i)));
    expect(seen[0]).to.deep.equal({ topic: name(0), events: 1, dropped: 1, conflicts: 0 });
    expect(seen[1]).to.deep.equal({ topic: name(1), events: 1, dropped: 1, conflicts: 1 });
    expect(seen[2]).to.deep.equal({ topic: name(2), events: 1, dropped: 0, conflicts: 0 });
  });

  it('gives 100 topics by default, and starts after any name, stored or not', async () => {
    const r = await get(shared.cluster.baseUrl, '/topics');
    expect(r.body.topics).to.have.length(100);
    expect(r.body.next_after).to.equal(name(99));
    const mid = await get(shared.cluster.baseUrl, `/topics?limit=2&after=${name(1)}x`);
    expect(mid.body.topics.map((t: any) => t.topic)).to.deep.equal([name(2), name(3)]);
    const end = await get(shared.cluster.baseUrl, `/topics?after=${name(TOPICS - 2)}`);
    expect(end.body).to.deep.equal({ topics: [{ topic: name(TOPICS - 1), events: 1, dropped: 0, conflicts: 0 }], next_after: null });
    expect((await get(shared.cluster.baseUrl, '/topics?after=zzz')).body).to.deep.equal({ topics: [], next_after: null });
  });

  it('answers 400 for a bad limit, an empty after, or a parameter given twice', async () => {
    for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=-1', 'limit=1.5', 'after=', 'after=a&after=b', 'limit=1&limit=2']) {
      const r = await get(shared.cluster.baseUrl, `/topics?${q}`);
      expect(r.status, q).to.equal(400);
      expect(r.body.error, q).to.equal('bad_request');
      expect(r.body.message, q).to.be.a('string');
    }
  });

  it('lists at most 1,000 names in /stats, saying how many there are', async () => {
    const r = await get(shared.cluster.baseUrl, '/stats');
    expect(r.body.topics).to.have.length(1000);
    expect(r.body.topics_count).to.equal(TOPICS);
    expect(r.body.topics_truncated).to.equal(true);
  });
});
