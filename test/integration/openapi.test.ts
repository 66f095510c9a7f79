// GET /openapi.json and GET /docs: every route the router serves is documented, the event
// schema is the one the API validates with, and the examples and the live answers fit the
// documented schemas.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { EventSchema, MAX_TEXT_CHARS, validateEvents } from '../../shared/schema.js';
import type { Store } from '../../shared/store/port.js';
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import { createApp } from '../../services/api/app.js';
import type { Backlog } from '../../services/api/publish/backlog.js';
import type { Enqueuer } from '../../services/api/publish/enqueue.js';
import type { ResultWaiter } from '../../services/api/publish/results.js';
import { useCluster } from '../support/suite.js';
import { get, publish, request } from '../../tools/harness/http.js';
import { event } from '../support/http.js';

type Schema = Record<string, any>;
type Doc = Record<string, any>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'options'];

/** The property names a schema declares, through $ref and allOf. */
function declared(doc: Doc, schema: Schema): Set<string> {
  if (schema.$ref !== undefined) return declared(doc, resolve(doc, schema.$ref));
  const names = new Set(Object.keys(schema.properties ?? {}));
  for (const sub of schema.allOf ?? []) for (const name of declared(doc, sub)) names.add(name);
  return names;
}

/**
 * The part of JSON Schema 2020-12 the document uses; anything else it meets is an error.
 * Stricter than JSON Schema in one way, on purpose: an object may hold only the fields its
 * schema declares (unless it says additionalProperties), so an answer cannot carry a field
 * the document does not describe. `open` is for the parts of an allOf, which the whole checks.
 */
function validate(doc: Doc, schema: Schema, value: unknown, at = '$', open = false): string[] {
  const known = new Set([
    '$ref', 'allOf', 'anyOf', 'const', 'enum', 'type', 'properties', 'required', 'additionalProperties', 'items',
    'minItems', 'maxItems', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'description', 'examples', 'default',
  ]);
  const unknown = Object.keys(schema).filter((k) => !known.has(k));
  if (unknown.length > 0) return [`${at}: the test's validator does not know ${unknown.join(', ')}`];
  if (schema.$ref !== undefined) return validate(doc, resolve(doc, schema.$ref), value, at, open);
  const errors: string[] = [];
  for (const sub of schema.allOf ?? []) errors.push(...validate(doc, sub, value, at, true));
  if (schema.anyOf && !schema.anyOf.some((sub: Schema) => validate(doc, sub, value, at).length === 0)) {
    errors.push(`${at}: fits none of anyOf`);
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) errors.push(`${at}: is not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${at}: is not one of ${JSON.stringify(schema.enum)}`);
  if (schema.type !== undefined) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual =
      value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;
    const fits = types.some((t) => t === actual || (t === 'number' && actual === 'integer'));
    if (!fits) return [...errors, `${at}: is ${actual}, not ${types.join(' or ')}`];
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) errors.push(`${at}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && length > schema.maxLength) errors.push(`${at}: longer than ${schema.maxLength}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${at}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${at}: above ${schema.maximum}`);
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) errors.push(`${at}: not above ${schema.exclusiveMinimum}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${at}: more than ${schema.maxItems} items`);
    if (schema.items) value.forEach((item, i) => errors.push(...validate(doc, schema.items, item, `${at}[${i}]`)));
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in obj)) errors.push(`${at}: lacks ${key}`);
    const names = declared(doc, schema);
    // A bare {type: 'object'} (a payload) is any object; one that names its fields is closed.
    const closed = !open && schema.additionalProperties === undefined && names.size > 0;
    for (const [key, v] of Object.entries(obj)) {
      const sub = schema.properties?.[key] ?? schema.additionalProperties;
      if (sub === false || (sub === undefined && closed && !names.has(key))) errors.push(`${at}.${key}: is not declared`);
      else if (sub !== undefined && sub !== true) errors.push(...validate(doc, sub, v, `${at}.${key}`));
    }
  }
  return errors;
}

function resolve(doc: Doc, ref: string): Schema {
  expect(ref, 'a local $ref').to.match(/^#\//);
  let node: any = doc;
  for (const part of ref.slice(2).split('/')) {
    node = node?.[part];
    if (node === undefined) throw new Error(`$ref ${ref} does not resolve`);
  }
  return node;
}

function operations(doc: Doc): { path: string; method: string; op: any }[] {
  return Object.entries(doc.paths as Record<string, any>).flatMap(([p, item]) =>
    METHODS.filter((m) => item[m] !== undefined).map((m) => ({ path: p, method: m, op: item[m] })),
  );
}

function schemaOf(doc: Doc, op: any, status: number, media = 'application/json'): Schema {
  const content = op.responses?.[status]?.content?.[media];
  if (content === undefined) throw new Error(`${op.operationId}: no ${media} answer documented for ${status}`);
  return content.schema;
}

/** An app built in this process, never started: only its router is looked at. */
function buildApp(dataDir: string): { app: ReturnType<typeof createApp>; store: Store } {
  const config = loadConfig({ DATA_DIR: dataDir });
  const store = openSqliteStore({ dataDir });
  const app = createApp({
    config,
    log: createLogger({ name: 'openapi-test', level: 'silent' }),
    store,
    queue: {} as Queue,
    redis: {} as Redis,
    enqueuer: {} as Enqueuer,
    results: {} as ResultWaiter,
    backlog: {} as Backlog,
    startedAt: Date.now(),
    isReady: () => true,
  });
  return { app, store };
}

describe('openapi', function () {
  const shared = useCluster({ workers: 1 });
  let doc: Doc;

  before(async () => {
    const r = await get(shared.cluster.baseUrl, '/openapi.json');
    expect(r.status).to.equal(200);
    expect(r.headers.get('content-type')).to.match(/^application\/json/);
    doc = r.body;
  });

  it('documents every route the router serves, and nothing else', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-openapi-'));
    const { app, store } = buildApp(dataDir);
    try {
      // @koa/router's routes() middleware carries its router.
      const routers = app.middleware.map((m) => (m as { router?: { stack: { path: unknown; methods: string[] }[] } }).router).filter(Boolean);
      expect(routers).to.have.length(1);
      const served = new Set<string>();
      for (const layer of routers[0]!.stack) {
        expect(layer.path, 'a route with a fixed path').to.be.a('string');
        for (const method of layer.methods) {
          // HEAD comes with every GET.
          // The router's `:name` and `*name` are OpenAPI's `{name}`.
          if (method !== 'HEAD') served.add(`${method} ${(layer.path as string).replace(/[:*](\w+)/g, '{$1}')}`);
        }
      }
      const documented = new Set(operations(doc).map((o) => `${o.method.toUpperCase()} ${o.path}`));
      expect({
        undocumented: [...served].filter((r) => !documented.has(r)),
        notServed: [...documented].filter((r) => !served.has(r)),
      }).to.deep.equal({ undocumented: [], notServed: [] });
      expect(served.size).to.be.at.least(10);
    } finally {
      await store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('is OpenAPI 3.1 whose references all resolve, with one operationId per operation', () => {
    expect(doc.openapi).to.equal('3.1.0');
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (typeof node === 'object' && node !== null) {
        for (const [k, v] of Object.entries(node)) {
          if (k === '$ref') refs.push(v as string);
          else walk(v);
        }
      }
    };
    walk(doc);
    expect(refs.length).to.be.greaterThan(10);
    for (const ref of new Set(refs)) expect(() => resolve(doc, ref), ref).not.to.throw();
    const ids = operations(doc).map((o) => o.op.operationId);
    expect(new Set(ids).size).to.equal(ids.length);
    for (const { op } of operations(doc)) expect(Object.keys(op.responses).length, op.operationId).to.be.greaterThan(0);
  });

  it("takes the event's schema from shared/schema.ts", () => {
    const schema = doc.components.schemas.Event;
    expect(Object.keys(schema.properties)).to.deep.equal(Object.keys(EventSchema.entries));
    expect(schema.required).to.have.members(Object.keys(EventSchema.entries));
    for (const field of ['topic', 'event_id', 'source']) {
      expect(schema.properties[field]).to.include({ type: 'string', minLength: 1, maxLength: MAX_TEXT_CHARS });
    }
    expect(schema.properties.payload.type).to.equal('object');
    // Rules that JSON Schema has no keyword for travel as prose, from the schema's messages.
    expect(schema.properties.topic.description).to.include('must not contain control characters');
    expect(schema.properties.timestamp.description).to.include('ISO 8601');
    expect(schema.properties.payload.description).to.match(/at most \d+ bytes/);
    expect(JSON.stringify(schema)).not.to.include('x-rules');
  });

  it('has request examples that the schema, the validator and the API all accept', async () => {
    let posted = 0;
    for (const { path: p, op } of operations(doc).filter((o) => o.op.requestBody)) {
      for (const [media, content] of Object.entries(op.requestBody.content as Record<string, any>)) {
        const examples = Object.entries<any>(content.examples ?? {});
        expect(examples.length, `${op.operationId} ${media} examples`).to.be.greaterThan(0);
        for (const [name, example] of examples) {
          const what = `${op.operationId} ${media} ${name}`;
          let items: unknown[];
          if (media === 'application/json') {
            expect(validate(doc, content.schema, example.value), what).to.deep.equal([]);
            const v = example.value;
            items = Array.isArray(v) ? v : Array.isArray(v.events) ? v.events : [v];
          } else {
            expect(example.value, what).to.be.a('string');
            items = (example.value as string).split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
          }
          for (const item of items) expect(validate(doc, doc.components.schemas.Event, item), what).to.deep.equal([]);
          expect(validateEvents(items), what).to.include({ ok: true });

          const body = media === 'application/json' ? JSON.stringify(example.value) : example.value;
          const r = await request(shared.cluster.baseUrl, 'POST', p, body, { raw: true, contentType: media });
          expect(r.status, `${what}: ${JSON.stringify(r.body)}`).to.equal(202);
          expect(r.body.accepted).to.equal(items.length);
          expect(validate(doc, schemaOf(doc, op, 202), r.body), what).to.deep.equal([]);
          posted++;
        }
      }
    }
    // /publish and /publish/batch, three JSON examples and one NDJSON each.
    expect(posted).to.equal(8);
  });

  it('has response examples that fit their schemas', () => {
    let checked = 0;
    for (const { op } of operations(doc)) {
      for (const [status, response] of Object.entries(op.responses as Record<string, any>)) {
        const content = response.content?.['application/json'];
        if (content?.example === undefined) continue;
        expect(validate(doc, content.schema, content.example), `${op.operationId} ${status}`).to.deep.equal([]);
        checked++;
      }
    }
    expect(checked).to.be.greaterThan(15);
  });

  it('describes what the API really answers', async () => {
    const ops = Object.fromEntries(operations(doc).map((o) => [o.op.operationId, o.op]));
    const fits = (operationId: string, status: number, body: unknown) =>
      expect(validate(doc, schemaOf(doc, ops[operationId], status), body), `${operationId} ${status}`).to.deep.equal([]);

    expect((await publish(shared.cluster.baseUrl, event({ topic: 'doc' }))).status).to.equal(202);
    const answers: [string, string, number][] = [
      ['listEvents', '/events?limit=5', 200],
      ['listEvents', '/events?topic=doc', 200],
      ['listEvents', '/events?limit=0', 400],
      ['stats', '/stats', 200],
      ['listTopics', '/topics?limit=2', 200],
      ['listTopics', '/topics?limit=0', 400],
      ['health', '/health', 200],
      ['ready', '/ready', 200],
    ];
    for (const [operationId, p, status] of answers) {
      const r = await get(shared.cluster.baseUrl, p);
      expect(r.status, p).to.equal(status);
      fits(operationId, status, r.body);
    }
    const waited = await request(shared.cluster.baseUrl, 'POST', '/publish?wait=10', [event({ topic: 'doc' }), event({ topic: 'doc' })]);
    expect(waited.status).to.equal(200);
    fits('publish', 200, waited.body);
    const badWait = await request(shared.cluster.baseUrl, 'POST', '/publish?wait=99', event());
    expect(badWait.status).to.equal(400);
    fits('publish', 400, badWait.body);
    const one = (await get(shared.cluster.baseUrl, '/events?topic=doc&limit=1')).body.events[0];
    const looked = await get(shared.cluster.baseUrl, `/events/doc/${encodeURIComponent(one.event_id)}`);
    expect(looked.status).to.equal(200);
    fits('getEvent', 200, looked.body);
    const missing = await get(shared.cluster.baseUrl, '/events/doc/never-stored');
    expect(missing.status).to.equal(404);
    fits('getEvent', 404, missing.body);
    // The check is strict: a field the document does not declare is refused.
    const stats = (await get(shared.cluster.baseUrl, '/stats')).body;
    expect(validate(doc, schemaOf(doc, ops.stats, 200), { ...stats, surprise: 1 })).to.deep.equal(['$.surprise: is not declared']);
    expect(validate(doc, schemaOf(doc, ops.stats, 200), { ...stats, store: { ...stats.store, extra: true } })).to.deep.equal([
      '$.store.extra: is not declared',
    ]);
    const invalid = await publish(shared.cluster.baseUrl, [event(), event({ timestamp: '2025-02-30T00:00:00Z' })]);
    expect(invalid.status).to.equal(422);
    fits('publish', 422, invalid.body);
    const empty = await publish(shared.cluster.baseUrl, []);
    expect(empty.status).to.equal(422);
    fits('publish', 422, empty.body);
    const broken = await publish(shared.cluster.baseUrl, '{"topic":', { raw: true });
    expect(broken.status).to.equal(400);
    fits('publish', 400, broken.body);
    const wrongType = await publish(shared.cluster.baseUrl, 'x', { raw: true, contentType: 'text/csv' });
    expect(wrongType.status).to.equal(415);
    fits('publish', 415, wrongType.body);

    const metrics = await fetch(`${shared.cluster.baseUrl}/metrics`);
    expect(metrics.status).to.equal(200);
    expect(Object.keys(ops.metrics.responses[200].content)).to.deep.equal([metrics.headers.get('content-type')!.split(';')[0]]);
    for (const [operationId, p] of [['docs', '/docs'], ['dashboard', '/']] as const) {
      const page = await fetch(shared.cluster.baseUrl + p);
      expect(page.status).to.equal(200);
      expect(Object.keys(ops[operationId].responses[200].content)).to.deep.equal([page.headers.get('content-type')!.split(';')[0]]);
    }
  });

  it('shows the document as a self-contained page at /docs', async () => {
    const res = await fetch(`${shared.cluster.baseUrl}/docs`);
    expect(res.status).to.equal(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).to.include("default-src 'none'");
    const html = await res.text();
    for (const { path: p, method, op } of operations(doc)) {
      expect(html, `${method} ${p}`).to.include(`<code>${p.replace(/&/g, '&#38;')}</code>`);
      expect(html).to.include(op.summary.replace(/&/g, '&#38;').replace(/'/g, '&#39;').replace(/"/g, '&#34;'));
    }
    for (const name of Object.keys(doc.components.schemas)) expect(html).to.include(`id="schema-${name}"`);
    // Nothing from elsewhere: no script, no remote stylesheet, image or font.
    expect(html).not.to.match(/<script|<link|<img|@import|url\(/i);
    expect(html).not.to.match(/(src|href)="(https?:)?\/\//i);
  });
});
