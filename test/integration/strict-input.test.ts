// POST /publish reads its input strictly: bytes that are not UTF-8 are refused, not replaced;
// header values match the way HTTP says (case-insensitively); nesting is refused before it
// costs seconds; numbers a double would change and keys given twice are refused with their
// path, so what is stored is what was published; a 422 counts every invalid event.
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { allEvents, drained, publish } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { useCluster } from '../support/suite.js';

const KEY = 'k-strict';

describe('strict input', function () {
  this.timeout(60_000);
  const shared = useCluster({ workers: 1, env: { API_KEY: KEY } });
  let received = 0;

  async function send(body: string | Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; body: any; ms: number }> {
    const started = performance.now();
    const res = await fetch(`${shared.cluster.baseUrl}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
      body,
    });
    const text = await res.text();
    return { status: res.status, body: JSON.parse(text), ms: performance.now() - started };
  }
  const eventText = (id: string, payload: string, extra = '') =>
    `{"topic":"strict","event_id":"${id}","timestamp":"2025-10-24T00:00:00Z","source":"s"${extra},"payload":${payload}}`;

  it('refuses bytes that are not UTF-8 instead of storing two ids as one', async () => {
    // "id-\xff" and "id-\xfe": decoded leniently both are "id-\ufffd", one identity.
    const body = Buffer.concat([Buffer.from('['), Buffer.from(eventText('id-X', '{}')), Buffer.from(','), Buffer.from(eventText('id-Y', '{}')), Buffer.from(']')]);
    body[body.indexOf('id-X') + 3] = 0xff;
    body[body.indexOf('id-Y') + 3] = 0xfe;
    const r = await send(body);
    expect(r.status).to.equal(400);
    expect(r.body.error).to.equal('invalid_json');
    expect(r.body.message).to.match(/UTF-8/);
    const nd = await send(Buffer.concat([body.subarray(1, body.indexOf('},{') + 1), Buffer.from('\n')]), { 'content-type': 'application/x-ndjson' });
    expect(nd.status).to.equal(400);
    expect(nd.body.error).to.equal('invalid_json');
  });

  it('matches media types, Content-Encoding and the Bearer scheme case-insensitively', async () => {
    const one = () => JSON.stringify(event({ topic: 'strict-headers' }));
    const answers = await Promise.all([
      send(one(), { 'content-type': 'Application/JSON; Charset=UTF-8' }),
      send(one(), { 'content-type': 'APPLICATION/X-NDJSON' }),
      send(gzipSync(one()), { 'content-encoding': 'GZIP' }),
      send(one(), { 'content-encoding': 'Identity' }),
      send(one(), { authorization: `bearer   ${KEY}` }),
      send(one(), { authorization: `BEARER ${KEY}` }),
    ]);
    expect(answers.map((a) => a.status), JSON.stringify(answers.map((a) => a.body))).to.deep.equal([202, 202, 202, 202, 202, 202]);
    received += answers.length;
    const unknown = await send(one(), { 'content-encoding': 'x-unknown' });
    expect(unknown.status).to.equal(415);
  });

  it('refuses pathological nesting in milliseconds, before parsing it', async () => {
    const depth = 7_000_000;
    const arrays = await send('['.repeat(depth) + ']'.repeat(depth));
    expect(arrays.status).to.equal(422);
    expect(arrays.body.error).to.equal('validation_failed');
    expect(arrays.ms).to.be.below(1500);
    const objects = await send(eventText('deep', '{"a":'.repeat(2_000_000) + '1' + '}'.repeat(2_000_000)));
    expect(objects.status).to.equal(422);
    expect(objects.body.details).to.deep.equal([{ index: 0, path: 'payload', message: 'must nest at most 256 levels deep' }]);
    expect(objects.ms).to.be.below(1500);
  });

  it('counts every invalid event in the 422 message, also past the 1,000 details listed', async () => {
    const bad = Array.from({ length: 1500 }, () => ({ ...event(), timestamp: 'yesterday' }));
    const r = await send(JSON.stringify([event(), ...bad]));
    expect(r.status).to.equal(422);
    expect(r.body.details).to.have.length(1000);
    expect(r.body.message).to.equal('1500 event(s) are invalid; nothing was accepted');
  });

  it('refuses numbers a double cannot hold exactly, naming their path, in JSON and NDJSON', async () => {
    for (const [number, path] of [
      ['9007199254740993', 'payload.id'],
      ['12345678901234567890', 'payload.id'],
      ['1e400', 'payload.id'],
      ['0.1000000000000000055511151231257827', 'payload.id'],
    ] as const) {
      const r = await send(`[${eventText(`n-ok-${path}`, '{"id":1}')},${eventText(`n-${number}`, `{"id":${number}}`)}]`);
      expect(r.status, number).to.equal(422);
      expect(r.body.details, number).to.have.length(1);
      expect(r.body.details[0]).to.include({ index: 1, path });
      expect(r.body.details[0].message, number).to.include(number);
    }
    const deep = await send(eventText('n-deep', '{"list":[1,{"x":[2,-1e999]}]}'));
    expect(deep.body.details).to.deep.equal([{ index: 0, path: 'payload.list.1.x.1', message: deep.body.details[0].message }]);
    const nd = await send(`${eventText('nd-1', '{}')}\n${eventText('nd-2', '{"v":18446744073709551616}')}\n`, { 'content-type': 'application/x-ndjson' });
    expect(nd.status).to.equal(422);
    expect(nd.body.details[0]).to.include({ index: 1, path: 'payload.v' });
  });

  it('refuses a key given twice in a payload or among the fields, and ignores it in unknown fields', async () => {
    const inPayload = await send(eventText('dup-1', '{"a":1,"b":{"c":1,"c":2}}'));
    expect(inPayload.status).to.equal(422);
    expect(inPayload.body.details).to.deep.equal([{ index: 0, path: 'payload.b.c', message: inPayload.body.details[0].message }]);
    const field = await send(eventText('dup-2', '{}', ',"topic":"other"'));
    expect(field.status).to.equal(422);
    expect(field.body.details[0]).to.include({ index: 0, path: 'topic' });
    const unknownField = await send(eventText('dup-3', '{}', ',"x":1,"x":2'));
    expect(unknownField.status).to.equal(202);
    received += 1;
  });

  it('stores every number it accepts as the same JSON value; -0 is stored as 0', async () => {
    const payload = '{"a":0.1,"b":1.0,"c":1e2,"d":123456789012345,"e":1e21,"f":-0,"g":9007199254740991,"h":5e-324,"i":-0.0}';
    const r = await send(eventText('numbers', payload));
    expect(r.status, JSON.stringify(r.body)).to.equal(202);
    received += 1;
    await drained(shared.cluster.baseUrl, received);
    const [stored] = (await allEvents(shared.cluster.baseUrl, 'strict')).filter((e) => e.event_id === 'numbers');
    expect(stored.payload).to.deep.equal({ a: 0.1, b: 1, c: 100, d: 123456789012345, e: 1e21, f: 0, g: 9007199254740991, h: 5e-324, i: 0 });
    expect(Object.is(stored.payload.f, 0)).to.equal(true);
  });

  it('still answers 400 for JSON that is not JSON, with the reason', async () => {
    const r = await publish(shared.cluster.baseUrl, '{"topic": ', { raw: true, headers: { authorization: `Bearer ${KEY}` } });
    expect(r.status).to.equal(400);
    expect(r.body.error).to.equal('invalid_json');
  });
});
