// Property-based tests of POST /publish against the real processes: whatever arrives, the
// answer is a 202 or a 4xx in the contract's shape, never a 5xx, a crash or a hang, and
// nothing invalid reaches the store.
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import fc from 'fast-check';
import { MAX_PAYLOAD_DEPTH, validateEvents } from '../../shared/schema.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, get, stats } from '../../tools/harness/http.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { waitFor } from '../../tools/harness/wait.js';

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_BATCH_EVENTS = 50;
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

type Answer = { status: number; body: any; text: string };
const tally = { requests: 0, byStatus: {} as Record<string, number> };

let cluster: Cluster;

/** Sends raw bytes; a hang is a failure, not a wait. */
async function send(body: Uint8Array | string, contentType: string | undefined, extra: Record<string, string> = {}, path = '/publish'): Promise<Answer> {
  const headers: Record<string, string> = { ...extra };
  if (contentType !== undefined) headers['content-type'] = contentType;
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const res = await fetch(cluster.baseUrl + path, { method: 'POST', headers, body: bytes, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  tally.requests++;
  tally.byStatus[res.status] = (tally.byStatus[res.status] ?? 0) + 1;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

/** The contract: 202 with the count, or a 4xx whose body is {error, message, ...}. */
function expectContractAnswer(a: Answer, what: string): void {
  expect(a.status, `${what}: ${a.text.slice(0, 300)}`).to.satisfy((s: number) => s === 202 || (s >= 400 && s < 500));
  expect(a.body, `${what}: body is not JSON: ${a.text.slice(0, 200)}`).to.be.an('object');
  if (a.status === 202) {
    expect(a.body.status).to.equal('accepted');
    expect(a.body.accepted).to.be.a('number').above(0);
  } else {
    expect(a.body.error, what).to.be.a('string').that.is.not.empty;
    expect(a.body.message, what).to.be.a('string');
    if (a.body.error === 'validation_failed') {
      expect(a.body.details).to.be.an('array').that.is.not.empty;
      for (const d of a.body.details) {
        expect(d.index).to.be.a('number');
        expect(d.path).to.be.a('string');
        expect(d.message).to.be.a('string');
      }
    }
  }
}

// ---- events and the ways to spoil them ---------------------------------------------------
let serial = 0;
const FIELDS = ['topic', 'event_id', 'timestamp', 'source', 'payload'] as const;

const validEvent = fc
  .record({
    topic: fc.constantFrom('orders', 'pay ments', 'ünïcødé', '😀🎉', 'a'.repeat(255), '🙂'.repeat(255)),
    source: fc.constantFrom('checkout', 's', 'x'.repeat(255), 'tab\tand\nnewline are fine in a source'),
    timestamp: fc.constantFrom(
      '2025-10-24T00:00:00Z',
      '2024-02-29T23:59:59.123456789+07:00',
      '2025-10-24T00:00',
      '2025-10-24t00:00:00z',
      '2025-10-24T00:00:00-0330',
    ),
    payload: fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
    extra: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
  })
  .map(({ extra, ...e }) => ({ ...e, event_id: `fz-${process.pid}-${++serial}`, ...(extra === undefined ? {} : { unknown_field: extra }) }));

const anyValue = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 5 }),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.object({ maxDepth: 2 }),
);

/** Nested JSON text built as text: JSON.stringify cannot go this deep. */
function nestedText(depth: number): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

function nest(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

type Mutation = (e: Record<string, unknown>) => Record<string, unknown>;
const mutation: fc.Arbitrary<{ name: string; apply: Mutation }> = fc.oneof(
  fc.constantFrom(...FIELDS).map((f) => ({ name: `drop ${f}`, apply: (e: Record<string, unknown>) => { const c = { ...e }; delete c[f]; return c; } })),
  fc.tuple(fc.constantFrom(...FIELDS), anyValue).map(([f, v]) => ({ name: `${f} = ${JSON.stringify(v)?.slice(0, 40)}`, apply: (e: Record<string, unknown>) => ({ ...e, [f]: v }) })),
  fc.tuple(fc.constantFrom('topic', 'event_id', 'source'), fc.constantFrom(256, 1000, 300_000)).map(([f, n]) => ({ name: `${f} of ${n} chars`, apply: (e: Record<string, unknown>) => ({ ...e, [f]: 'y'.repeat(n) }) })),
  fc.tuple(fc.constantFrom('topic', 'event_id'), fc.constantFrom('\u0000', '\u0007', '\u001b[31m', '\u007f', '\u0085', '\n')).map(([f, c]) => ({ name: `control char in ${f}`, apply: (e: Record<string, unknown>) => ({ ...e, [f]: `a${c}b` }) })),
  fc.tuple(fc.constantFrom('topic', 'event_id', 'source'), fc.constantFrom('\ud800', '\udfff', 'a\udc00b')).map(([f, s]) => ({ name: `lone surrogate in ${f}`, apply: (e: Record<string, unknown>) => ({ ...e, [f]: s }) })),
  fc.constantFrom('2025-02-30T00:00:00Z', '2023-02-29T00:00:00Z', '2025-13-01T00:00:00Z', '2025-10-24T24:00:00Z', '2025-10-24T00:60:00Z', '2025-10-24T00:00:61Z', '2025-10-24T00:00:00+24:00', '2025-10-24', 'yesterday', '', '1761264000', '2025-10-24T00:00:00.1234567890Z', ' 2025-10-24T00:00:00Z').map((t) => ({ name: `timestamp ${t}`, apply: (e: Record<string, unknown>) => ({ ...e, timestamp: t }) })),
  fc.constantFrom<unknown>([], 'text', 7, null, [1, 2], true).map((p) => ({ name: `payload ${JSON.stringify(p)}`, apply: (e: Record<string, unknown>) => ({ ...e, payload: p }) })),
  fc.constantFrom(262_145, 300_000).map((n) => ({ name: `payload of ${n} bytes`, apply: (e: Record<string, unknown>) => ({ ...e, payload: { blob: 'z'.repeat(n) } }) })),
  // Deeper nesting is the last test's business: this process must stringify these itself.
  fc.constantFrom(10, 200, 1000).map((d) => ({ name: `payload nested ${d} deep`, apply: (e: Record<string, unknown>) => ({ ...e, payload: { deep: nest(d) } }) })),
  fc.constantFrom('__proto__', 'constructor', 'prototype').map((k) => ({
    name: `${k} keys`,
    apply: (e: Record<string, unknown>) => {
      // Computed keys define own properties, as JSON.parse does on the server.
      const poison = { [k]: { polluted: true, topic: 'polluted', prototype: { polluted: true } } };
      return { ...e, ...poison, payload: { ...(e.payload as object), ...poison } };
    },
  })),
);

const spoiltEvent = fc.tuple(validEvent, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([e, ms]) => ({
  event: ms.reduce((acc, m) => m.apply(acc), e as Record<string, unknown>),
  mutations: ms.map((m) => m.name),
}));

type Encoding = 'single' | 'events' | 'array' | 'ndjson';
function encode(events: unknown[], encoding: Encoding): { body: string; contentType: string } {
  switch (encoding) {
    case 'single':
      return { body: JSON.stringify(events[0]), contentType: 'application/json' };
    case 'events':
      return { body: JSON.stringify({ events }), contentType: 'application/json; charset=utf-8' };
    case 'array':
      return { body: JSON.stringify(events), contentType: 'application/json' };
    case 'ndjson':
      return { body: events.map((e) => JSON.stringify(e)).join(serial % 2 ? '\n' : '\r\n') + '\n', contentType: 'application/x-ndjson' };
  }
}

// What a 202 promised, to be found in the store exactly once.
const accepted = new Map<string, Record<string, unknown>>();
const deepAccepted: string[] = [];
const identity = (e: { topic: unknown; event_id: unknown }) => `${String(e.topic)}\u0000${String(e.event_id)}`;

describe('fuzzing POST /publish', function () {
  this.timeout(180_000);
  let redis: TestRedis;

  before(async () => {
    redis = await startTestRedis();
    cluster = await startCluster({
      redisUrl: redis.url,
      workers: 1,
      env: { MAX_BODY_BYTES: String(MAX_BODY_BYTES), MAX_BATCH_EVENTS: String(MAX_BATCH_EVENTS), LOG_LEVEL: 'warn' },
    });
  });
  after(async () => {
    console.log(`      fuzz: ${tally.requests} requests, answers ${JSON.stringify(tally.byStatus)}, ${accepted.size} events accepted`);
    await cluster?.destroy();
    await redis?.stop();
  });

  it('answers batches of valid and spoilt events as the schema says, in every encoding', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof({ weight: 2, arbitrary: validEvent.map((event) => ({ event, mutations: [] as string[] })) }, { weight: 3, arbitrary: spoiltEvent }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom<Encoding>('single', 'events', 'array', 'ndjson'),
        async (items, encoding) => {
          const events = items.map((i) => i.event);
          const enc = encode(encoding === 'single' ? events.slice(0, 1) : events, encoding);
          const sentItems = encoding === 'single' ? events.slice(0, 1) : events;
          const what = `${encoding} [${items.map((i) => i.mutations.join('+') || 'valid').join(', ')}]`;
          const a = await send(enc.body, enc.contentType);
          expectContractAnswer(a, what);
          // The oracle: the same events after the trip through JSON the server makes.
          const roundTrip = JSON.parse(JSON.stringify(sentItems)) as unknown[];
          const deep = items.some((i) => i.mutations.some((m) => m.includes('nested')));
          const verdict = validateEvents(roundTrip);
          if (a.status === 413) {
            expect(Buffer.byteLength(enc.body), what).to.be.above(MAX_BODY_BYTES);
            return;
          }
          if (!deep) expect(a.status, what).to.equal(verdict.ok ? 202 : 422);
          if (a.status === 202) {
            expect(a.body.accepted).to.equal(sentItems.length);
            for (const e of roundTrip as Record<string, unknown>[]) accepted.set(identity(e as any), e);
          } else {
            expect(a.body.error, what).to.equal('validation_failed');
            const spoilt = items.findIndex((i) => i.mutations.length > 0 && !validateEvents([JSON.parse(JSON.stringify(i.event))]).ok);
            if (spoilt >= 0 && spoilt < sentItems.length && !deep) expect(a.body.details.map((d: any) => d.index), what).to.include(spoilt);
          }
        },
      ),
      { numRuns: RUNS * 2, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
  });

  it('answers broken bytes, broken lines and wrong content types with a 4xx', async () => {
    const contentTypes = fc.constantFrom<string | undefined>(
      'application/json',
      'application/x-ndjson',
      'APPLICATION/JSON',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/json; charset=no-such-charset',
      'text/plain',
      'application/xml',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
      '*/*',
      '',
      ';;;',
      undefined,
    );
    // Mostly none; else a compression the bytes do not have, or one nobody knows.
    const encodings = fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown', 'gzip, gzip') });
    const validText = fc.array(validEvent, { minLength: 1, maxLength: 4 }).map((es) => Buffer.from(JSON.stringify({ events: es })));
    const spoilBytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => ({ name: 'random bytes', apply: () => b })),
      fc.nat().map((n) => ({ name: 'truncated', apply: (b: Uint8Array) => b.subarray(0, n % b.length) })),
      fc.tuple(fc.nat(), fc.constantFrom([0xff], [0xfe, 0xff], [0xc3, 0x28], [0xe2, 0x82], [0xf0, 0x28, 0x8c, 0x28], [0xed, 0xa0, 0x80], [0x00])).map(([n, bad]) => ({
        name: `invalid UTF-8 ${bad.map((x) => x.toString(16)).join(' ')}`,
        apply: (b: Uint8Array) => Buffer.concat([b.subarray(0, n % b.length), Buffer.from(bad), b.subarray(n % b.length)]),
      })),
      fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([n, x]) => ({ name: 'one byte changed', apply: (b: Uint8Array) => { const c = Buffer.from(b); c[n % c.length] = x; return c; } })),
      fc.constant({ name: 'BOM first', apply: (b: Uint8Array) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]) }),
      fc.constant({ name: 'empty', apply: () => new Uint8Array(0) }),
      fc.constantFrom('{', '[', '"', 'null', '{"events": []}', '[]', '{"events": {}}', '{"events": null}', '1e999', '"\\ud800"', '{"a":1}{"b":2}').map((t) => ({ name: `text ${t}`, apply: () => Buffer.from(t) })),
    );
    await fc.assert(
      fc.asyncProperty(validText, spoilBytes, contentTypes, fc.constantFrom('/publish', '/publish/batch'), encodings, async (text, spoil, contentType, path, encoding) => {
        const body = spoil.apply(text);
        const a = await send(body, contentType, encoding === undefined ? {} : { 'content-encoding': encoding }, path);
        expectContractAnswer(a, `${spoil.name} as ${contentType}`);
        // JSON is UTF-8 (RFC 8259, section 8.1): a charset parameter changes nothing, and a
        // leading BOM or a replaced byte may still leave valid events.
        const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
        if (!['application/json', 'application/x-ndjson'].includes(media)) expect(a.status, `${spoil.name} as ${contentType}`).to.equal(415);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('answers NDJSON with a broken line with 400 naming the line, and queues nothing of it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(validEvent, { minLength: 2, maxLength: 8 }), fc.nat(), fc.constantFrom('cut', 'garbage', 'two on one line', 'lone brace'), async (events, at, how) => {
        const lines = events.map((e) => JSON.stringify(e));
        const i = at % lines.length;
        const line = lines[i]!;
        lines[i] = how === 'cut' ? line.slice(0, line.length - 1) : how === 'garbage' ? `${line}x` : how === 'two on one line' ? `${line} ${line}` : '}';
        const a = await send(lines.join('\n'), 'application/x-ndjson');
        expectContractAnswer(a, how);
        expect(a.status).to.equal(400);
        expect(a.body.error).to.equal('invalid_json');
        expect(a.body.line).to.equal(i + 1);
      }),
      { numRuns: RUNS },
    );
  });

  it('answers any query on GET /events with 200 or 400', async () => {
    const param = fc.oneof(fc.string({ maxLength: 30 }), fc.integer().map(String), fc.constantFrom('', '0', '1000', '1001', '-1', '1e3', '9007199254740993', '99999999999999999999', 'NaN', '%00', '١٢'));
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.constantFrom('limit', 'after', 'topic', 'other'), param, { maxKeys: 4 }), fc.boolean(), async (q, twice) => {
        const search = new URLSearchParams(q);
        if (twice && q.limit !== undefined) search.append('limit', q.limit);
        const r = await fetch(`${cluster.baseUrl}/events?${search.toString()}`, { signal: AbortSignal.timeout(15_000) });
        const body = (await r.json()) as any;
        tally.requests++;
        tally.byStatus[r.status] = (tally.byStatus[r.status] ?? 0) + 1;
        expect(r.status, search.toString()).to.be.oneOf([200, 400]);
        if (r.status === 200) {
          expect(body.events).to.be.an('array');
          expect(body.count).to.equal(body.events.length);
        } else {
          expect(body.error).to.equal('bad_request');
          expect(body.message).to.be.a('string');
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses bodies and batches over their limits with 413', async () => {
    const big = await send(JSON.stringify({ events: [{ pad: 'p'.repeat(MAX_BODY_BYTES) }] }), 'application/json');
    expectContractAnswer(big, 'big body');
    expect(big.status).to.equal(413);
    const many = Array.from({ length: MAX_BATCH_EVENTS + 1 }, () => fc.sample(validEvent, 1)[0]!);
    for (const encoding of ['events', 'array', 'ndjson'] as const) {
      const enc = encode(many, encoding);
      const a = await send(enc.body, enc.contentType);
      expectContractAnswer(a, `${MAX_BATCH_EVENTS + 1} events as ${encoding}`);
      expect(a.status).to.equal(413);
    }
  });

  it('reads compressed bodies, and counts the limit after decompression', async () => {
    const one = fc.sample(validEvent, 1)[0]!;
    const ok = await send(gzipSync(JSON.stringify(one)), 'application/json', { 'content-encoding': 'gzip' });
    expect(ok.status, ok.text).to.equal(202);
    accepted.set(identity(one), JSON.parse(JSON.stringify(one)));
    // A few KiB that inflate past the body limit.
    const bomb = gzipSync(Buffer.concat([Buffer.from('{"pad":"'), Buffer.alloc(MAX_BODY_BYTES + 1, 'a'), Buffer.from('"}')]));
    expect(bomb.length).to.be.below(MAX_BODY_BYTES / 100);
    const big = await send(bomb, 'application/json', { 'content-encoding': 'gzip' });
    expectContractAnswer(big, 'gzip bomb');
    expect(big.status).to.equal(413);
  });

  it('lets no __proto__ or constructor key reach the API\'s prototypes', async () => {
    const polluting = `{"__proto__": {"topic": "t", "event_id": "x", "timestamp": "2025-10-24T00:00:00Z", "source": "s", "payload": {}}, "constructor": {"prototype": {"topic": "t"}}}`;
    expect((await send(polluting, 'application/json')).status).to.equal(422);
    expect((await send(`[${polluting}]`, 'application/json')).status).to.equal(422);
    // Were Object.prototype polluted, an event missing its fields would now pass.
    const a = await send('{"payload": {}}', 'application/json');
    expect(a.status).to.equal(422);
    expect(a.body.details.map((d: any) => d.path)).to.include.members(['topic', 'event_id', 'timestamp', 'source']);
  });

  it('reads back the most deeply nested payloads it accepts', async () => {
    // The depth JSON.stringify manages depends on the stack it runs on: a payload the API
    // accepts must still go through the worker's commit and GET /events.
    let lo = 1;
    let hi = 200_000;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      const e = { topic: 'deep', event_id: `deep-${process.pid}-${mid}` };
      const text = `{"topic":"deep","event_id":"${e.event_id}","timestamp":"2025-10-24T00:00:00Z","source":"s","payload":${nestedText(mid)}}`;
      const a = await send(text, 'application/json');
      expectContractAnswer(a, `nested ${mid}`);
      if (a.status === 202) {
        deepAccepted.push(e.event_id);
        lo = mid;
      } else hi = mid - 1;
    }
    expect(lo).to.equal(MAX_PAYLOAD_DEPTH);
    await waitFor(async () => (await stats(cluster.baseUrl)).pending === 0, { timeoutMs: 30_000, what: 'the deep events to be stored' });
    const r = await get(cluster.baseUrl, '/events?topic=deep&limit=1000');
    expect(r.status, String(JSON.stringify(r.body)).slice(0, 300)).to.equal(200);
    expect(r.body.events.map((e: any) => e.event_id)).to.have.members(deepAccepted);
  });

  it('stores exactly the accepted events, once each, all valid; and stays up', async () => {
    const s = await waitFor(
      async () => {
        const st = await stats(cluster.baseUrl);
        return st.pending === 0 && st;
      },
      { timeoutMs: 60_000, what: 'the queue to drain' },
    );
    const stored = await allEvents(cluster.baseUrl);
    const seen = new Map<string, number>();
    for (const e of stored) {
      const fields = { ...e };
      delete fields.seq;
      delete fields.processed_at;
      expect(validateEvents([fields]).ok, JSON.stringify(fields).slice(0, 300)).to.equal(true);
      seen.set(identity(e), (seen.get(identity(e)) ?? 0) + 1);
    }
    expect([...seen.values()].filter((n) => n > 1)).to.deep.equal([]);
    for (const [k, sent] of accepted) {
      expect(seen.get(k), k).to.equal(1);
      const got = stored.find((e) => identity(e) === k);
      for (const f of ['topic', 'event_id', 'timestamp', 'source']) expect(got[f], `${k} ${f}`).to.equal(sent[f]);
      expect(JSON.stringify(got.payload)).to.equal(JSON.stringify(sent.payload));
      expect(got).not.to.have.property('unknown_field');
    }
    expect(s.unique_processed).to.equal(stored.length);
    expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
    expect(cluster.api.alive() && cluster.workers[0]!.alive()).to.equal(true);
    expect((await stats(cluster.baseUrl) as any).queue.failed).to.equal(0);
    // A 5xx, had there been one, is logged at error level.
    expect(cluster.api.log()).not.to.match(/"level":50/);
  });
});
