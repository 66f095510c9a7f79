// Retention and erasure through the built API and real workers: an event older than
// EVENT_RETENTION stops being served and is deleted by a worker's sweeper; DELETE
// /events/{topic}/{event_id} erases one at once. Either way the identity stays: later
// copies are answered `duplicate` with the stored identity's seq, and the books balance.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { request, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { requirePostgres } from '../support/postgres.js';
import { useCluster } from '../support/suite.js';

const KEY = 'erase-key-1';
const auth = { authorization: `Bearer ${KEY}` };
const run = randomUUID().slice(0, 8);
let n = 0;
const ev = (payload: Record<string, unknown> = {}, topic = 'ret/topic') => ({
  topic,
  event_id: `${run}/${++n}`,
  timestamp: '2025-10-24T00:00:00Z',
  source: 'retention-test',
  payload,
});
const path = (e: { topic: string; event_id: string }) => `/events/${encodeURIComponent(e.topic)}/${encodeURIComponent(e.event_id)}`;
const publishWait = (url: string, body: unknown) => request(url, 'POST', '/publish?wait=5', body, { headers: auth });

function erasure(store: 'sqlite' | 'postgres') {
  describe(`erasure (${store})`, function () {
    this.timeout(120_000);
    before(async function () {
      if (store === 'postgres') await requirePostgres(this);
    });
    const shared = useCluster({ workers: 1, store, env: { API_KEY: KEY } });
    const url = () => shared.cluster.baseUrl;

    it('answers 401 without the key, 404 for an identity never stored, 204 once, then 410 erased', async () => {
      const e = ev({ secret: 'erase-me' });
      const first = await publishWait(url(), e);
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      const seq = first.body.results[0].seq as number;

      expect((await request(url(), 'DELETE', path(e))).status).to.equal(401);
      expect((await request(url(), 'DELETE', path(e), undefined, { headers: { authorization: 'Bearer wrong' } })).status).to.equal(401);
      const missing = await request(url(), 'DELETE', path({ topic: e.topic, event_id: `${e.event_id}-never` }), undefined, { headers: auth });
      expect(missing.status).to.equal(404);
      expect(missing.body.error).to.equal('not_found');
      expect((await request(url(), 'GET', path(e))).status, 'still served before the erasure').to.equal(200);

      const erased = await request(url(), 'DELETE', path(e), undefined, { headers: auth });
      expect(erased.status, JSON.stringify(erased.body)).to.equal(204);
      const again = await request(url(), 'DELETE', path(e), undefined, { headers: auth });
      expect(again.status).to.equal(410);
      expect(again.body.error).to.equal('erased');
      const lookup = await request(url(), 'GET', path(e));
      expect(lookup.status).to.equal(410);
      expect(lookup.body.error).to.equal('erased');
      const page = await request(url(), 'GET', `/events?topic=${encodeURIComponent(e.topic)}&limit=1000`);
      expect(page.body.events.map((x: { event_id: string }) => x.event_id)).to.not.include(e.event_id);

      // A later copy, even with other content, is a duplicate of the kept identity.
      const copy = await publishWait(url(), [{ ...e, payload: { secret: 'other' } }, e]);
      expect(copy.status, JSON.stringify(copy.body)).to.equal(200);
      expect(copy.body.results).to.deep.equal([
        { index: 0, status: 'duplicate', seq },
        { index: 1, status: 'duplicate', seq },
      ]);
      const s = await stats(url());
      expect(s.erased).to.equal(1);
      expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
      // Logged with its identity, never its payload.
      await waitFor(() => shared.cluster.api.log().includes('event erased'), { what: 'the erasure logged' });
      const line = shared.cluster.api.log().split('\n').find((l) => l.includes('event erased'))!;
      expect(JSON.parse(line)).to.include({ topic: e.topic, event_id: e.event_id });
      expect(JSON.parse(line).reqId).to.be.a('string');
      expect(shared.cluster.api.log()).to.not.include('erase-me');
    });

    it('erases while a worker commits, and every later copy is still a duplicate', async () => {
      const events = Array.from({ length: 40 }, () => ev({ n }));
      const stored = await publishWait(url(), events);
      expect(stored.status).to.equal(200);
      const before = await stats(url());
      // Publish a stream of new events while erasing the stored ones.
      let publishing = true;
      const load = (async () => {
        let sent = 0;
        while (publishing) {
          const r = await request(url(), 'POST', '/publish', Array.from({ length: 50 }, () => ev({ load: true }, 'ret-load')), { headers: auth });
          expect(r.status).to.equal(202);
          sent += 50;
        }
        return sent;
      })();
      for (const e of events) {
        const r = await request(url(), 'DELETE', path(e), undefined, { headers: auth });
        expect(r.status, JSON.stringify(r.body)).to.equal(204);
      }
      publishing = false;
      const sent = await load;
      const copies = await publishWait(url(), events);
      expect(copies.status).to.equal(200);
      expect(copies.body.results.map((r: { status: string }) => r.status)).to.deep.equal(events.map(() => 'duplicate'));
      expect(copies.body.results.map((r: { seq: number }) => r.seq)).to.deep.equal(stored.body.results.map((r: { seq: number }) => r.seq));
      const s = await waitFor(
        async () => {
          const x = await stats(url());
          return x.pending === 0 && x.received === before.received + sent + events.length && x;
        },
        { what: 'the queue drained', timeoutMs: 60_000 },
      );
      expect(s.erased).to.equal((before.erased as number) + events.length);
      expect(s.unique_processed).to.equal(before.unique_processed + sent);
      expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
    });
  });
}

erasure('sqlite');
erasure('postgres');

describe('retention (sqlite)', function () {
  this.timeout(120_000);
  const shared = useCluster({ workers: 1, env: { EVENT_RETENTION: '2s' } });
  const url = () => shared.cluster.baseUrl;

  it('stops serving an event older than EVENT_RETENTION, deletes it in the background, and still drops its copies', async () => {
    const e = ev({ marker: 'expire-me' });
    const first = await publishWait(url(), e);
    expect(first.status, JSON.stringify(first.body)).to.equal(200);
    const seq = first.body.results[0].seq as number;
    const lookup = await waitFor(
      async () => {
        const r = await request(url(), 'GET', path(e));
        return r.status === 410 && r;
      },
      { what: 'the lookup to answer 410', timeoutMs: 30_000 },
    );
    expect(lookup.body.error).to.equal('expired');
    const page = await request(url(), 'GET', `/events?topic=${encodeURIComponent(e.topic)}`);
    expect(page.body.events).to.deep.equal([]);
    expect((await request(url(), 'DELETE', path(e))).body.error).to.equal('expired');
    const s = await waitFor(
      async () => {
        const x = await stats(url());
        return (x.expired as number) >= 1 && x;
      },
      { what: 'the sweeper to delete it', timeoutMs: 30_000 },
    );
    expect(s.erased).to.equal(0);
    const copy = await publishWait(url(), { ...e, payload: { marker: 'changed' } });
    expect(copy.body.results).to.deep.equal([{ index: 0, status: 'duplicate', seq }]);
    const after = await stats(url());
    expect(after.unique_processed).to.equal(1);
    expect(after.received).to.equal(after.unique_processed + after.duplicate_dropped);
  });
});
