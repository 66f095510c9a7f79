// A large body is parsed and checked in slices, the event loop free between them: a request
// that arrives while a 7 MB body is being worked through is answered first, not after it.
// A payload surely too large is refused from its text, before the body is parsed at all.
import http from 'node:http';
import { expect } from 'chai';
import { MAX_PAYLOAD_BYTES } from '../../shared/schema.js';
import { useCluster } from '../support/suite.js';

type Answer = { status: number; body: any };

/** Sends a request; its body's last byte only once `last` resolves. */
function send(baseUrl: string, method: string, path: string, body?: Buffer, last: Promise<void> = Promise.resolve()): Promise<Answer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise<Answer>((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': body.length };
    const req = http.request({ hostname, port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    if (body === undefined) return req.end();
    req.write(body.subarray(0, -1));
    last.then(() => req.end(body.subarray(-1)), reject);
  });
}

const eventText = (i: number, payload: string) =>
  `{"topic":"stall","event_id":"e-${i}","timestamp":"2025-10-24T00:00:00Z","source":"s","payload":${payload}}`;

// 1,400 events whose payloads nest 900 levels (over the 256 a payload may): seconds of
// parsing and checking, which once held every other request until the 422 was written.
const nested = '{"a":'.repeat(899) + '{}' + '}'.repeat(899);
const heavy = Buffer.from(`[${Array.from({ length: 1400 }, (_, i) => eventText(i, nested)).join(',')}]`);

describe('parsing in slices', function () {
  this.timeout(180_000);
  // The bytes in flight are bounded to the heavy body's size: a 2-byte publish is refused
  // (503) exactly when the API holds all of that body but its last byte.
  const shared = useCluster({ workers: 0, env: { MAX_INFLIGHT_BYTES: String(heavy.length) } });

  it('answers /health while a heavy body is being parsed, not after it', async () => {
    const base = shared.cluster.baseUrl;
    let release!: () => void;
    const answer = send(base, 'POST', '/publish', heavy, new Promise<void>((r) => (release = r)));
    for (;;) {
      const probe = await fetch(`${base}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      await probe.arrayBuffer();
      if (probe.status === 503) break;
    }
    // The last byte starts the parse; every /health below is sent after it, one at a time.
    release();
    let done = false;
    const refused = answer.finally(() => (done = true));
    let answeredBefore = 0;
    while (!done) {
      const health = await send(base, 'GET', '/health');
      expect(health.status).to.equal(200);
      if (!done) answeredBefore++;
    }
    const r = await refused;
    expect(r.status).to.equal(422);
    expect(r.body.message).to.equal('1400 event(s) are invalid; nothing was accepted');
    expect(r.body.details[0]).to.deep.equal({ index: 0, path: 'payload', message: 'must nest at most 256 levels deep' });
    expect(answeredBefore, 'no /health was answered while the heavy body was parsed').to.be.above(0);
  });

  it('refuses a payload whose text is surely over the limit without parsing the body', async () => {
    // The body ends malformed: parsed, it would be a 400. Its first event's payload, 1.2 MB
    // of one string, cannot serialize within the limit, which the text alone says.
    const oversized = eventText(0, `{"s":"${'x'.repeat(1200 * 1024)}"}`);
    const r = await send(shared.cluster.baseUrl, 'POST', '/publish', Buffer.from(`[${oversized},{"broken":`));
    expect(r.status).to.equal(422);
    expect(r.body.details).to.deep.equal([{ index: 0, path: 'payload', message: `must serialize to at most ${MAX_PAYLOAD_BYTES} bytes of JSON` }]);
    // Escapes and whitespace make a text longer than what it serializes to: such a payload is parsed, and valid.
    const escaped = eventText(1, `{"s":"${'\\u0078'.repeat(MAX_PAYLOAD_BYTES / 2)}"   ${' '.repeat(5 * MAX_PAYLOAD_BYTES)}}`);
    const ok = await send(shared.cluster.baseUrl, 'POST', '/publish', Buffer.from(`[${escaped}]`));
    expect(ok.status).to.equal(202);
  });
});
