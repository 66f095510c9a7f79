// The two ways into POST /publish of one running API (services/api/publish/route.ts): the
// exact path is answered by the lean path beside Koa (publish/lean.ts), and every other
// spelling the router accepts, here the trailing slash, by the Koa route. The same request
// sent both ways must get the same status, the same headers in the same order and the same
// body, successes and errors alike: if either way starts answering on its own (a header,
// an error code, a body field), this fails. Real processes: the built API, a worker, Redis.
import http from 'node:http';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { waitFor } from '../../tools/harness/wait.js';
import { useCluster } from '../support/suite.js';
import { anEvent } from '../support/events.js';

const KEY = 'paths-key';
const AUTH = { authorization: `Bearer ${KEY}` };
const JSON_TYPE = { 'content-type': 'application/json' };

type Reply = { status: number; message: string; headers: [string, string][]; body: unknown };
type Req = { path: string; headers: Record<string, string>; body: string | Buffer };

function send(baseUrl: string, r: Req): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${r.path}`, { method: 'POST', headers: r.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const headers: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        resolve({ status: res.statusCode!, message: res.statusMessage!, headers, body: JSON.parse(Buffer.concat(chunks).toString()) });
      });
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

/** What differs from one answer to the next by nature: the date, a generated request id, the job, the seqs (and so the length). */
function comparable(reply: Reply): unknown {
  const body = reply.body as Record<string, unknown>;
  const varies = 'job' in body;
  const headers = reply.headers.map(([k, v]) => {
    const name = k.toLowerCase();
    if (name === 'date') return [k, '<date>'];
    if (name === 'x-request-id' && /^[0-9a-f]{8}-[0-9a-z]+$/.test(v)) return [k, '<generated>'];
    if (name === 'content-length' && varies) return [k, '<length>'];
    return [k, v];
  });
  const results = body.results as { seq: number }[] | undefined;
  const same = varies ? { ...body, job: '<job>', ...(results && { results: results.map((r) => ({ ...r, seq: '<seq>' })) }) } : body;
  return { status: reply.status, message: reply.message, headers, body: same };
}

describe('the two ways into POST /publish', function () {
  const shared = useCluster({ workers: 1, env: { API_KEY: KEY, MAX_BATCH_EVENTS: '3', MAX_BODY_BYTES: '4096' } });
  let serial = 0;

  /** The same request for both ways, each with events of its own (so that each is stored, not a duplicate). */
  type Case = (id: () => string) => Omit<Req, 'path'> & { path?: string };
  const json = (body: unknown, extra: Record<string, string> = {}) => ({ headers: { ...JSON_TYPE, ...AUTH, ...extra }, body: JSON.stringify(body) });
  const one = (id: () => string, over: Record<string, unknown> = {}) => anEvent({ topic: 'paths', event_id: id(), ...over });

  const cases: [string, Case][] = [
    ['one event', (id) => json(one(id))],
    ['a producer request id', (id) => json(one(id), { 'x-request-id': 'producer-9' })],
    ['a batch on /publish/batch', (id) => ({ ...json({ events: [one(id), one(id)] }), path: '/publish/batch' })],
    ['NDJSON', (id) => ({ headers: { 'content-type': 'application/x-ndjson', ...AUTH }, body: `${JSON.stringify(one(id))}\n${JSON.stringify(one(id))}\n` })],
    ['gzip', (id) => ({ headers: { ...JSON_TYPE, ...AUTH, 'content-encoding': 'gzip' }, body: zlib.gzipSync(JSON.stringify(one(id))) })],
    ['?wait with a worker (200 and the results)', (id) => ({ ...json([one(id), one(id)]), path: '?wait=20' })],
    ['?wait=0', (id) => ({ ...json(one(id)), path: '?wait=0' })],
    ['?wait twice', (id) => ({ ...json(one(id)), path: '?wait=1&wait=2' })],
    ['no key', (id) => ({ headers: { ...JSON_TYPE }, body: JSON.stringify(one(id)) })],
    ['a wrong key', (id) => json(one(id), { authorization: 'Bearer wrong' })],
    ['text/plain', (id) => ({ headers: { 'content-type': 'text/plain', ...AUTH }, body: JSON.stringify(one(id)) })],
    ['an unknown encoding', (id) => ({ headers: { ...JSON_TYPE, ...AUTH, 'content-encoding': 'zstd' }, body: JSON.stringify(one(id)) })],
    ['broken gzip', () => ({ headers: { ...JSON_TYPE, ...AUTH, 'content-encoding': 'gzip' }, body: 'not gzip' })],
    ['malformed JSON', () => ({ headers: { ...JSON_TYPE, ...AUTH }, body: '{"topic":' })],
    ['an invalid event', (id) => json(one(id, { timestamp: '2025-02-30T00:00:00Z', topic: '' }))],
    ['an empty batch', () => json({ events: [] })],
    ['a batch over MAX_BATCH_EVENTS', (id) => json([one(id), one(id), one(id), one(id)])],
    ['a body over MAX_BODY_BYTES', (id) => json(one(id, { payload: { big: 'x'.repeat(5000) } }))],
  ];

  /** The case sent to the lean path (`/publish...`) and to the Koa route (`/publish/...`). */
  async function bothWays(make: Case): Promise<[Reply, Reply]> {
    const id = () => `p-${++serial}`;
    const lean = make(id);
    const koa = make(id);
    const at = (r: ReturnType<Case>, slash: string) => {
      const [path, query] = (r.path ?? '').startsWith('?') ? ['/publish', r.path!] : [r.path ?? '/publish', ''];
      return { ...r, path: `${path}${slash}${query}` };
    };
    return [await send(shared.cluster.baseUrl, at(lean, '')), await send(shared.cluster.baseUrl, at(koa, '/'))];
  }

  for (const [name, make] of cases) {
    it(`answers ${name} the same both ways`, async () => {
      const [lean, koa] = await bothWays(make);
      expect(comparable(koa)).to.deep.equal(comparable(lean));
    });
  }

  it('answers 200 with every result to a ?wait both ways (the case above is not two 202s)', async () => {
    const [lean, koa] = await bothWays(cases.find(([name]) => name.startsWith('?wait with'))![1]);
    expect([lean.status, koa.status]).to.deep.equal([200, 200]);
  });

  it('answers 503 with Retry-After the same both ways while Redis is down', async function () {
    const { redis } = shared;
    if (redis.kind !== 'redis-server') this.skip();
    await redis.kill();
    try {
      const make: Case = (id) => json(one(id));
      const [lean, koa] = await waitFor(
        async () => {
          const replies = await bothWays(make);
          return replies.every((r) => r.status === 503) && replies;
        },
        { what: 'both ways to answer 503 while Redis is down' },
      );
      expect(lean.headers.map(([k]) => k)).to.include('Retry-After');
      expect(comparable(koa)).to.deep.equal(comparable(lean));
    } finally {
      await redis.start();
    }
  });
});
