// The lean publish path (services/api/publish/lean.ts) against the Koa routes it stands
// beside: the same requests, sent to an API served by Koa alone and to one served by the
// lean listener, must get the same status, the same headers in the same order, the same
// body, and count the same in GET /metrics. Real Redis, real SQLite; nothing is mocked but
// the backlog's verdict, which the test sets.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { createQueue, createRedis } from '../../shared/queue.js';
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import type { Store } from '../../shared/store/port.js';
import { createApi } from '../../services/api/app.js';
import { subscribeCommits, type CommitFeed } from '../../services/api/commits.js';
import { createEnqueuer } from '../../services/api/publish/enqueue.js';
import { createResultWaiter } from '../../services/api/publish/results.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { anEvent } from '../support/events.js';

const KEY = 'lean-key';
const AUTH = { authorization: `Bearer ${KEY}` };
const JSON_TYPE = { 'content-type': 'application/json' };

type Reply = { status: number; message: string; headers: [string, string][]; body: unknown };
type Req = { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer };

function send(port: number, r: Req): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method: r.method ?? 'POST', path: r.path ?? '/publish', headers: r.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const headers: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: compared as text.
        }
        resolve({ status: res.statusCode!, message: res.statusMessage!, headers, body });
      });
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

/** What may differ between two servers: the date, generated request ids, job ids (and so the length of a body that holds one). */
function comparable(reply: Reply): unknown {
  const hasJob = typeof reply.body === 'object' && reply.body !== null && 'job' in reply.body;
  const headers = reply.headers.map(([k, v]) => {
    const name = k.toLowerCase();
    if (name === 'date') return [k, '<date>'];
    if (name === 'x-request-id' && /^[0-9a-f]{8}-[0-9a-z]+$/.test(v)) return [k, '<generated>'];
    if (name === 'content-length' && hasJob) return [k, '<length>'];
    return [k, v];
  });
  const body = hasJob ? { ...(reply.body as object), job: '<job>' } : reply.body;
  return { status: reply.status, message: reply.message, headers, body };
}

type Served = { port: number; full: boolean; stopping: boolean; close(): Promise<void> };

describe('lean publish path', function () {
  let redis: TestRedis;
  const servers: { koa?: Served; lean?: Served } = {};

  async function serve(lean: boolean): Promise<Served> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-lean-'));
    const config = loadConfig({ DATA_DIR: dataDir, API_KEY: KEY, MAX_BATCH_EVENTS: '3', MAX_BODY_BYTES: '4096', COALESCE_MS: '1' });
    const log = createLogger({ name: 'lean-test', level: 'silent' });
    const store: Store = openSqliteStore({ dataDir });
    const connection = createRedis(redis.url, 'api', 1000);
    connection.on('error', () => undefined);
    const queueName = `lean-${randomUUID()}`;
    const queue = createQueue(queueName, connection);
    const enqueuer = createEnqueuer({ queue, lingerMs: 1, maxEvents: 1000, timeoutMs: 1000, log });
    const commits: CommitFeed = subscribeCommits(connection, queueName, log);
    const results = createResultWaiter(commits);
    const state = { port: 0, full: false, stopping: false } as Served;
    const { app, listener } = createApi({
      config,
      log,
      store,
      queue,
      redis: connection,
      enqueuer,
      results,
      backlog: { full: () => state.full, added: () => undefined, sampled: Promise.resolve(), close: () => Promise.resolve() },
      startedAt: Date.now(),
      isReady: () => true,
    });
    const handle = lean ? listener : app.callback();
    // As services/api/main.ts does once shutdown has begun.
    const server = http.createServer((req, res) => {
      if (state.stopping) res.setHeader('Connection', 'close');
      void handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    state.port = (server.address() as AddressInfo).port;
    state.close = async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await results.close();
      await commits.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      connection.disconnect();
      await store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    };
    return state;
  }

  before(async () => {
    redis = await startTestRedis();
    servers.koa = await serve(false);
    servers.lean = await serve(true);
  });
  after(async () => {
    await servers.koa?.close();
    await servers.lean?.close();
    await redis?.stop();
  });

  const json = (body: unknown, extra: Record<string, string> = {}): Req => ({ headers: { ...JSON_TYPE, ...AUTH, ...extra }, body: JSON.stringify(body) });
  const ev = anEvent({ event_id: 'lean-1' });
  const many = (n: number) => Array.from({ length: n }, (_, i) => anEvent({ event_id: `lean-m${i}`, topic: `t${i % 2}` }));

  const cases: [string, Req][] = [
    ['one event', json(ev)],
    ['one event with a request id', json(ev, { 'x-request-id': 'from-producer-7' })],
    ['{"events"} on /publish/batch', { ...json({ events: many(2) }), path: '/publish/batch' }],
    ['a bare array', json(many(3))],
    ['NDJSON', { headers: { 'content-type': 'application/x-ndjson; charset=utf-8', ...AUTH }, body: many(2).map((e) => JSON.stringify(e)).join('\r\n') + '\n' }],
    ['gzip', { headers: { ...JSON_TYPE, ...AUTH, 'content-encoding': 'GZIP' }, body: zlib.gzipSync(JSON.stringify(ev)) }],
    ['broken gzip', { headers: { ...JSON_TYPE, ...AUTH, 'content-encoding': 'gzip' }, body: 'not gzip' }],
    ['an unknown encoding', { headers: { ...JSON_TYPE, ...AUTH, 'content-encoding': 'zstd' }, body: JSON.stringify(ev) }],
    ['no content type', { headers: { ...AUTH }, body: JSON.stringify(ev) }],
    ['text/plain', { headers: { 'content-type': 'text/plain', ...AUTH }, body: JSON.stringify(ev) }],
    ['no key', { headers: { ...JSON_TYPE }, body: JSON.stringify(ev) }],
    ['a wrong key', json(ev, { authorization: 'Bearer nope' })],
    ['malformed JSON', { headers: { ...JSON_TYPE, ...AUTH }, body: '{"topic":' }],
    ['an empty body', { headers: { ...JSON_TYPE, ...AUTH }, body: '' }],
    ['bytes that are not UTF-8', { headers: { ...JSON_TYPE, ...AUTH }, body: Buffer.from([0x7b, 0xff, 0x7d]) }],
    ['an invalid event', json({ ...ev, timestamp: '2025-02-30T00:00:00Z', topic: '' })],
    ['an inexact number', { ...json(ev), body: JSON.stringify(ev).replace('"amount":12', '"amount":9007199254740993') }],
    ['an empty batch', json({ events: [] })],
    ['a batch over MAX_BATCH_EVENTS', json(many(4))],
    ['a body over MAX_BODY_BYTES', json({ ...ev, payload: { big: 'x'.repeat(5000) } })],
    ['?wait=abc', { ...json(ev), path: '/publish?wait=abc' }],
    ['?wait=0', { ...json(ev), path: '/publish?wait=0' }],
    ['?wait twice', { ...json(ev), path: '/publish?wait=1&wait=2' }],
    ['?wait=0.2 (no worker: accepted)', { ...json(ev), path: '/publish?wait=0.2' }],
    ['an empty query', { ...json(ev), path: '/publish?' }],
    ['another query', { ...json(ev), path: '/publish?x=1' }],
    ['a trailing slash', { ...json(ev), path: '/publish/' }],
    ['another case', { ...json(ev), path: '/PUBLISH' }],
    ['GET /publish', { method: 'GET', headers: { ...AUTH } }],
    ['HEAD /publish', { method: 'HEAD', headers: { ...AUTH } }],
    ['OPTIONS /publish/batch', { method: 'OPTIONS', path: '/publish/batch', headers: { ...AUTH } }],
    ['PUT /publish', { ...json(ev), method: 'PUT' }],
  ];

  for (const [name, req] of cases) {
    it(`answers ${name} as the Koa route does`, async () => {
      const koa = await send(servers.koa!.port, req);
      const lean = await send(servers.lean!.port, req);
      expect(comparable(lean)).to.deep.equal(comparable(koa));
    });
  }

  it('answers 503 with Retry-After when the backlog is full, as the Koa route does', async () => {
    servers.koa!.full = servers.lean!.full = true;
    try {
      const koa = await send(servers.koa!.port, json(ev));
      const lean = await send(servers.lean!.port, json(ev));
      expect(lean.status).to.equal(503);
      expect(lean.headers.map(([k]) => k)).to.include('Retry-After');
      expect(comparable(lean)).to.deep.equal(comparable(koa));
    } finally {
      servers.koa!.full = servers.lean!.full = false;
    }
  });

  it('answers with Connection: close while stopping, as the Koa route does', async () => {
    servers.koa!.stopping = servers.lean!.stopping = true;
    try {
      for (const req of [json(ev), json({ ...ev, topic: '' }), { ...json(ev), headers: { ...JSON_TYPE } }]) {
        const koa = await send(servers.koa!.port, req);
        const lean = await send(servers.lean!.port, req);
        expect(lean.headers[0]).to.deep.equal(['Connection', 'close']);
        expect(comparable(lean)).to.deep.equal(comparable(koa));
      }
    } finally {
      servers.koa!.stopping = servers.lean!.stopping = false;
    }
  });

  it('gives a generated request id to every answer', async () => {
    // Sent to both, so that the metrics of the two stay comparable.
    await send(servers.koa!.port, json(ev));
    const a = await send(servers.lean!.port, json(ev));
    const b = await send(servers.lean!.port, { method: 'GET', path: '/health' });
    const ids = [a, b].map((r) => r.headers.find(([k]) => k === 'X-Request-Id')?.[1]);
    expect(ids[0]).to.match(/^[0-9a-f]{8}-[0-9a-z]+$/);
    expect(ids[1]).to.match(/^[0-9a-f]{8}-[0-9a-z]+$/);
    expect(ids[0]).not.to.equal(ids[1]);
  });

  it('counts every publish answer in GET /metrics as the Koa route does', async () => {
    const series = async (port: number) => {
      const text = (await send(port, { method: 'GET', path: '/metrics' })).body as string;
      return text.split('\n').filter((l) => /^aggregator_publish_(requests_total|events_total|duration_seconds_count)\{/.test(l)).sort();
    };
    const koa = await series(servers.koa!.port);
    expect(koa.length).to.be.above(5);
    expect(await series(servers.lean!.port)).to.deep.equal(koa);
  });
});
