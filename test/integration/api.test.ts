// The HTTP contract, against a real API process, a real worker and a real Redis.
import { expect } from 'chai';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { useCluster } from '../support/suite.js';
import { allEvents, drained, get, publish, request, stats } from '../../tools/harness/http.js';
import { event } from '../support/http.js';

describe('api', function () {
  const shared = useCluster({ workers: 1 });
  let received = 0;


  describe('POST /publish', () => {
    it('accepts one event and stores it with seq and processed_at', async () => {
      const e = event({ topic: 'single' });
      const r = await publish(shared.cluster.baseUrl, e);
      received += 1;
      expect(r.status).to.equal(202);
      expect(r.body).to.include({ status: 'accepted', accepted: 1 });
      await drained(shared.cluster.baseUrl, received);
      const stored = await allEvents(shared.cluster.baseUrl, 'single');
      expect(stored).to.have.length(1);
      expect(stored[0]).to.include({ topic: e.topic, event_id: e.event_id, timestamp: e.timestamp, source: e.source });
      expect(stored[0].payload).to.deep.equal(e.payload);
      expect(stored[0].seq).to.be.a('number');
      expect(new Date(stored[0].processed_at).toISOString()).to.equal(stored[0].processed_at);
    });

    it('accepts {"events": [...]}, a bare array, NDJSON and /publish/batch', async () => {
      const a = [event({ topic: 'shapes' }), event({ topic: 'shapes' })];
      const b = [event({ topic: 'shapes' }), event({ topic: 'shapes' }), event({ topic: 'shapes' })];
      const c = [event({ topic: 'shapes' }), event({ topic: 'shapes' })];
      const d = [event({ topic: 'shapes' })];
      const ndjson = c.map((e) => JSON.stringify(e)).join('\r\n') + '\n\n';
      const replies = await Promise.all([
        publish(shared.cluster.baseUrl, { events: a }),
        publish(shared.cluster.baseUrl, b),
        publish(shared.cluster.baseUrl, ndjson, { contentType: 'application/x-ndjson', raw: true }),
        request(shared.cluster.baseUrl, 'POST', '/publish/batch', { events: d }),
      ]);
      expect(replies.map((r) => r.status)).to.deep.equal([202, 202, 202, 202]);
      expect(replies.map((r) => r.body.accepted)).to.deep.equal([2, 3, 2, 1]);
      received += 8;
      await drained(shared.cluster.baseUrl, received);
      const ids = (await allEvents(shared.cluster.baseUrl, 'shapes')).map((e) => e.event_id).sort();
      expect(ids).to.deep.equal([...a, ...b, ...c, ...d].map((e) => e.event_id).sort());
    });

    it('counts copies as accepted and stores the first copy once', async () => {
      const first = event({ topic: 'copies', payload: { v: 1 } });
      const copy = { ...first, payload: { v: 2 } };
      const r1 = await publish(shared.cluster.baseUrl, [first, first]);
      await drained(shared.cluster.baseUrl, (received += 2));
      const r2 = await publish(shared.cluster.baseUrl, copy);
      const s = await drained(shared.cluster.baseUrl, (received += 1));
      expect(r1.body.accepted).to.equal(2);
      expect(r2.body.accepted).to.equal(1);
      const stored = await allEvents(shared.cluster.baseUrl, 'copies');
      expect(stored).to.have.length(1);
      expect(stored[0].payload).to.deep.equal({ v: 1 });
      expect(s.duplicate_dropped).to.be.at.least(2);
    });

    it('treats the same event_id under two topics as two events', async () => {
      const id = `shared-${Date.now()}`;
      await publish(shared.cluster.baseUrl, [event({ topic: 'left', event_id: id }), event({ topic: 'right', event_id: id })]);
      await drained(shared.cluster.baseUrl, (received += 2));
      expect(await allEvents(shared.cluster.baseUrl, 'left')).to.have.length(1);
      expect(await allEvents(shared.cluster.baseUrl, 'right')).to.have.length(1);
    });

    it('ignores unknown fields and stores the five fields as published', async () => {
      const e = { ...event({ topic: 'extra' }), colour: 'blue', nested: { a: 1 } };
      expect((await publish(shared.cluster.baseUrl, e)).status).to.equal(202);
      await drained(shared.cluster.baseUrl, (received += 1));
      const [stored] = await allEvents(shared.cluster.baseUrl, 'extra');
      expect(Object.keys(stored).sort()).to.deep.equal(
        ['event_id', 'payload', 'processed_at', 'seq', 'source', 'timestamp', 'topic'].sort(),
      );
    });

    it('answers 422 with details for every invalid event and enqueues nothing of the request', async () => {
      const before = await stats(shared.cluster.baseUrl);
      const good = event({ topic: 'never' });
      const r = await publish(shared.cluster.baseUrl, [
        good,
        { ...event(), timestamp: '2025-02-30T00:00:00Z' },
        { ...event(), topic: '' },
        { ...event(), payload: [1, 2] },
        'not an object',
        { ...event(), event_id: undefined },
        { ...event(), topic: 'a\nb' },
        { ...event(), source: 'x'.repeat(256) },
      ]);
      expect(r.status).to.equal(422);
      expect(r.body.error).to.equal('validation_failed');
      expect(r.body.message).to.be.a('string');
      const got = r.body.details.map((d: any) => [d.index, d.path]);
      expect(got).to.deep.equal([
        [1, 'timestamp'],
        [2, 'topic'],
        [3, 'payload'],
        [4, ''],
        [5, 'event_id'],
        [6, 'topic'],
        [7, 'source'],
      ]);
      for (const d of r.body.details) expect(d.message).to.be.a('string').and.not.empty;
      const after = await stats(shared.cluster.baseUrl);
      expect(after.received).to.equal(before.received);
      expect(await allEvents(shared.cluster.baseUrl, 'never')).to.have.length(0);
    });

    it('gives NDJSON details the index of the event', async () => {
      const lines = [event(), event(), { ...event(), timestamp: 'yesterday' }].map((e) => JSON.stringify(e)).join('\n');
      const r = await publish(shared.cluster.baseUrl, lines, { contentType: 'application/x-ndjson', raw: true });
      expect(r.status).to.equal(422);
      expect(r.body.details).to.deep.equal([{ index: 2, path: 'timestamp', message: r.body.details[0].message }]);
    });

    it('answers 400 invalid_json for malformed JSON and NDJSON', async () => {
      const json = await publish(shared.cluster.baseUrl, '{"topic": ', { raw: true });
      expect(json.status).to.equal(400);
      expect(json.body.error).to.equal('invalid_json');
      const empty = await publish(shared.cluster.baseUrl, '', { raw: true });
      expect(empty.status).to.equal(400);
      expect(empty.body.error).to.equal('invalid_json');
      const nd = await publish(shared.cluster.baseUrl, `${JSON.stringify(event())}\n{broken\n`, {
        contentType: 'application/x-ndjson',
        raw: true,
      });
      expect(nd.status).to.equal(400);
      expect(nd.body.error).to.equal('invalid_json');
      expect(nd.body.message).to.match(/line 2/);
    });

    it('answers 422 empty_batch for an empty batch in every shape', async () => {
      for (const [body, type] of [
        ['[]', 'application/json'],
        ['{"events": []}', 'application/json'],
        ['', 'application/x-ndjson'],
        ['\n\n', 'application/x-ndjson'],
      ] as const) {
        const r = await publish(shared.cluster.baseUrl, body, { contentType: type, raw: true });
        expect(r.status, `${type} ${JSON.stringify(body)}`).to.equal(422);
        expect(r.body.error).to.equal('empty_batch');
      }
    });

    it('answers 415 for other content types and for none', async () => {
      const text = await publish(shared.cluster.baseUrl, JSON.stringify(event()), { contentType: 'text/plain', raw: true });
      expect(text.status).to.equal(415);
      expect(text.body.error).to.be.a('string');
      const form = await publish(shared.cluster.baseUrl, 'a=b', { contentType: 'application/x-www-form-urlencoded', raw: true });
      expect(form.status).to.equal(415);
      const none = await fetch(`${shared.cluster.baseUrl}/publish`, { method: 'POST', body: new Uint8Array([123, 125]) });
      expect(none.status).to.equal(415);
      expect(((await none.json()) as any).error).to.be.a('string');
    });

    it('answers 413 for a body or a batch over the limit', async () => {
      const huge = 'x'.repeat(17 * 1024 * 1024);
      const body = await publish(shared.cluster.baseUrl, `{"pad": "${huge}"}`, { raw: true });
      expect(body.status).to.equal(413);
      expect(body.body.error).to.be.a('string');
      const batch = await publish(
        shared.cluster.baseUrl,
        Array.from({ length: 10_001 }, () => event()),
      );
      expect(batch.status).to.equal(413);
      expect(batch.body.error).to.equal('batch_too_large');
    });

    it('accepts a payload of exactly 256 KiB and refuses one byte more', async () => {
      const at = (bytes: number) => ({ s: 'a'.repeat(bytes - '{"s":""}'.length) });
      const ok = await publish(shared.cluster.baseUrl, event({ topic: 'big', payload: at(256 * 1024) }));
      expect(ok.status).to.equal(202);
      received += 1;
      const over = await publish(shared.cluster.baseUrl, event({ topic: 'big', payload: at(256 * 1024 + 1) }));
      expect(over.status).to.equal(422);
      expect(over.body.details[0].path).to.equal('payload');
      await drained(shared.cluster.baseUrl, received);
    });
  });

  describe('GET /events', () => {
    it('pages through a topic in seq order with next_after', async () => {
      const batch = Array.from({ length: 25 }, () => event({ topic: 'paged' }));
      await publish(shared.cluster.baseUrl, batch);
      await drained(shared.cluster.baseUrl, (received += 25));
      const seen: any[] = [];
      let after = 0;
      let pages = 0;
      for (;;) {
        const r = await get(shared.cluster.baseUrl, `/events?topic=paged&limit=10&after=${after}`);
        expect(r.status).to.equal(200);
        expect(r.body.topic).to.equal('paged');
        expect(r.body.count).to.equal(r.body.events.length);
        seen.push(...r.body.events);
        pages++;
        if (r.body.next_after === null) break;
        expect(r.body.next_after).to.equal(r.body.events.at(-1).seq);
        after = r.body.next_after;
      }
      expect(pages).to.equal(3);
      expect(seen.map((e) => e.event_id)).to.deep.equal(batch.map((e) => e.event_id));
      const seqs = seen.map((e) => e.seq);
      expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
    });

    it('lists every topic with topic null, and defaults the limit to 100', async () => {
      const r = await get(shared.cluster.baseUrl, '/events');
      expect(r.status).to.equal(200);
      expect(r.body.topic).to.equal(null);
      const s = await stats(shared.cluster.baseUrl);
      expect(r.body.count).to.equal(Math.min(100, s.unique_processed));
      const missing = await get(shared.cluster.baseUrl, '/events?topic=no-such-topic');
      expect(missing.body).to.deep.equal({ topic: 'no-such-topic', count: 0, events: [], next_after: null });
    });

    it('answers 400 for a bad limit or after', async () => {
      for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=-5', 'limit=1.5', 'after=-1', 'after=x', 'after=1e3']) {
        const r = await get(shared.cluster.baseUrl, `/events?${q}`);
        expect(r.status, q).to.equal(400);
        expect(r.body.error, q).to.be.a('string');
        expect(r.body.message, q).to.be.a('string');
      }
      expect((await get(shared.cluster.baseUrl, '/events?limit=1000')).status).to.equal(200);
    });
  });

  describe('GET /stats, /health, /ready and unknown paths', () => {
    it('reports the contract fields with exact counts', async () => {
      const s = await drained(shared.cluster.baseUrl, received);
      expect(s).to.include.keys('received', 'unique_processed', 'duplicate_dropped', 'pending', 'topics', 'uptime_seconds');
      expect(s.topics).to.deep.equal([...s.topics].sort());
      expect(s.topics).to.include.members(['single', 'shapes', 'copies', 'paged']);
      expect(s.uptime_seconds).to.be.a('number').at.least(0);
    });

    it('answers /health and /ready with 200', async () => {
      expect((await get(shared.cluster.baseUrl, '/health')).status).to.equal(200);
      const ready = await get(shared.cluster.baseUrl, '/ready');
      expect(ready.status).to.equal(200);
    });

    it('answers JSON 404 for an unknown path and JSON 405 for a wrong method', async () => {
      const r = await get(shared.cluster.baseUrl, '/nope');
      expect(r.status).to.equal(404);
      expect(r.body).to.include({ error: 'not_found' });
      expect(r.body.message).to.be.a('string');
      const m = await request(shared.cluster.baseUrl, 'DELETE', '/events');
      expect(m.status).to.equal(405);
      expect(m.body.error).to.be.a('string');
    });
  });

  describe('with API_KEY set', () => {
    let secured: Cluster;
    before(async () => {
      secured = await startCluster({ redisUrl: shared.redis.url, workers: 0, env: { API_KEY: 's3cret-key' } });
    });
    after(async () => secured?.destroy());

    it('answers 401 without the key or with a wrong one, 202 with it', async () => {
      const none = await publish(secured.baseUrl, event());
      expect(none.status).to.equal(401);
      expect(none.body.error).to.equal('unauthorized');
      const wrong = await publish(secured.baseUrl, event(), { headers: { authorization: 'Bearer nope' } });
      expect(wrong.status).to.equal(401);
      const right = await publish(secured.baseUrl, event(), { headers: { authorization: 'Bearer s3cret-key' } });
      expect(right.status).to.equal(202);
      // Reads stay open unless READ_API_KEY is set.
      expect((await get(secured.baseUrl, '/stats')).status).to.equal(200);
    });

    it('never writes the key to its logs', async () => {
      await publish(secured.baseUrl, event(), { headers: { authorization: 'Bearer s3cret-key' } });
      expect(secured.api.log()).not.to.include('s3cret-key');
    });
  });
});
