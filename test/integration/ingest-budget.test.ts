// MAX_INFLIGHT_BYTES bounds the request bodies the API holds on all its routes together: a
// body arriving slowly at POST /publish leaves the ingest routes only what remains of the
// budget, and one arriving at /v1/logs leaves POST /publish only that. Each slow body is a
// real socket that sends part of what its Content-Length announces, then waits.
import net from 'node:net';
import { expect } from 'chai';
import { request, type Reply } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';
import { useCluster } from '../support/suite.js';

const LIMIT = 64 * 1024;
/** What a slow body holds: less than the limit, so that it is taken, and more than the limit less TEXT. */
const HELD = 48 * 1024;
/** The text each quick request carries. */
const TEXT = 20 * 1024;

describe('ingest: one bytes-in-flight budget with POST /publish', function () {
  this.timeout(60_000);
  const shared = useCluster({ workers: 0, env: { MAX_INFLIGHT_BYTES: String(LIMIT) } });

  /**
   * A request whose first HELD bytes of body arrive, and whose rest never does; resolves once
   * the API has seen them. Nothing else may be in flight meanwhile: a body that comes in
   * while another is read is refused when its Content-Length would not fit beside it.
   */
  async function slowBody(path: string, contentType: string): Promise<net.Socket> {
    const socket = net.connect(Number(new URL(shared.cluster.baseUrl).port), '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) =>
      socket.on('connect', () =>
        socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nContent-Length: ${2 * HELD}\r\n\r\n${' '.repeat(HELD)}`, () => resolve()),
      ),
    );
    // Its bytes reached the API before this request did: the API reads them first.
    expect((await request(shared.cluster.baseUrl, 'GET', '/health')).status).to.equal(200);
    return socket;
  }

  const text = () => 'x'.repeat(TEXT);
  const quick: Record<string, () => Promise<Reply>> = {
    'OTLP /v1/logs': () =>
      request(shared.cluster.baseUrl, 'POST', '/v1/logs', {
        resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'budget' } }] }, scopeLogs: [{ logRecords: [{ body: { stringValue: text() } }] }] }],
      }),
    'Segment /v1/batch': () =>
      request(shared.cluster.baseUrl, 'POST', '/v1/batch', { batch: [{ type: 'track', event: 'budget', messageId: `m-${Math.random()}`, userId: 'u', properties: { text: text() } }] }),
    'POST /publish': () => request(shared.cluster.baseUrl, 'POST', '/publish', [event({ topic: 'budget', payload: { text: text() } })]),
  };

  /** Sends `name`'s request until the slow body's bytes have arrived and it is refused for them. */
  async function refusedBeside(name: string): Promise<void> {
    const reply = await waitFor(
      async () => {
        const r = await quick[name]!();
        return r.status === 503 && r;
      },
      { timeoutMs: 10_000, what: `${name} refused while the budget is held` },
    );
    expect(reply.headers.get('retry-after'), name).to.match(/^\d+$/);
    expect(reply.body.error, name).to.equal('unavailable');
  }

  async function takenAgain(name: string): Promise<void> {
    await waitFor(async () => (await quick[name]!()).status < 300, { timeoutMs: 10_000, what: `${name} taken once the budget is back` });
  }

  it('refuses the ingest routes while a slow POST /publish body holds the budget, and takes them once it is given back', async () => {
    for (const name of Object.keys(quick)) expect((await quick[name]!()).status, name).to.be.below(300);
    const slow = await slowBody('/publish', 'application/json');
    try {
      await refusedBeside('OTLP /v1/logs');
      await refusedBeside('Segment /v1/batch');
    } finally {
      slow.destroy();
    }
    await takenAgain('OTLP /v1/logs');
    await takenAgain('Segment /v1/batch');
  });

  it('refuses POST /publish while a slow /v1/logs body holds the budget', async () => {
    const slow = await slowBody('/v1/logs', 'application/x-protobuf');
    try {
      await refusedBeside('POST /publish');
      await refusedBeside('Segment /v1/batch');
    } finally {
      slow.destroy();
    }
    await takenAgain('POST /publish');
  });
});
