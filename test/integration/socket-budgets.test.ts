// Streams and waiting publishes have budgets of their own (services/api/http/budgets.ts):
// with every stream slot taken, or every waiter slot, producers still have all of
// MAX_CONNECTIONS; a waiter past MAX_WAITERS is refused with 503 and Retry-After before it
// enqueues anything; and the API's open files stay within the three budgets. Real processes,
// small budgets, no worker (so a publish with ?wait stays waiting).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { request, stats } from '../../tools/harness/http.js';
import { openStream, type StreamClient } from '../../tools/harness/sse.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';
import { useCluster } from '../support/suite.js';

const MAX_CONNECTIONS = 16;
const MAX_SUBSCRIBERS = 16;
const MAX_WAITERS = 8;
/**
 * Producers at once, each on a socket of its own: half of MAX_CONNECTIONS, the rest for the
 * test's other requests (fetch's pool), so that producers alone never reach the cap.
 */
const PRODUCERS = MAX_CONNECTIONS / 2;
const PUBLISHES_EACH = 20;

type Raw = { socket: net.Socket; status: Promise<number>; text: () => string; closed: Promise<void> };

/** A publish on a socket of its own, kept open after its answer (as a keep-alive client's). */
function rawPublish(port: number, path: string): Raw {
  const body = JSON.stringify(event({ topic: 'budgets' }));
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  socket.on('error', () => undefined);
  socket.on('connect', () =>
    socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
  );
  const status = new Promise<number>((resolve) => {
    socket.on('data', (c) => {
      text += c.toString();
      if (text.includes('\r\n\r\n')) resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0));
    });
    socket.on('close', () => resolve(0));
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, status, text: () => text, closed };
}

/**
 * The API's own sockets of its HTTP port (not its Redis or store connections): the fds of
 * `pid` that are TCP sockets whose local port is `port`, the listening one left out.
 */
function httpSockets(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const link = (() => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    })();
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) inodes.add(m[1]!);
  }
  let n = 0;
  for (const line of fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const localPort = parseInt(f[1]!.split(':')[1]!, 16);
    if (localPort === port && f[3] !== '0A' && inodes.has(f[9]!)) n++;
  }
  return n;
}

/** The most HTTP sockets the API held while `work` ran. */
async function peakSockets(pid: number, port: number, work: () => Promise<void>): Promise<number> {
  let peak = httpSockets(pid, port);
  const sampler = setInterval(() => (peak = Math.max(peak, httpSockets(pid, port))), 10);
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  return Math.max(peak, httpSockets(pid, port));
}

/** One publish on `agent`: its status, or the socket error that ended it. */
function post(agent: http.Agent, baseUrl: string, body: unknown): Promise<number> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(new URL('/publish', baseUrl), { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(text);
  });
}

/**
 * PRODUCERS producers publishing one event at a time, on at most PRODUCERS keep-alive
 * sockets; every answer's status, and every socket error.
 */
async function produce(baseUrl: string): Promise<{ statuses: number[]; errors: string[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: PRODUCERS });
  const statuses: number[] = [];
  const errors: string[] = [];
  try {
    await Promise.all(
      Array.from({ length: PRODUCERS }, async (_, p) => {
        for (let i = 0; i < PUBLISHES_EACH; i++) {
          await post(agent, baseUrl, event({ topic: `producer-${p}` })).then(
            (status) => statuses.push(status),
            (err: Error) => errors.push(err.message),
          );
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return { statuses, errors };
}

describe('socket budgets: streams and waiters apart from producers', function () {
  this.timeout(60_000);
  const shared = useCluster({
    workers: 0,
    env: { MAX_CONNECTIONS: String(MAX_CONNECTIONS), MAX_SUBSCRIBERS: String(MAX_SUBSCRIBERS), MAX_WAITERS: String(MAX_WAITERS) },
  });
  const base = () => shared.cluster.baseUrl;
  const port = () => Number(new URL(base()).port);
  const pid = () => shared.cluster.api.child.pid!;
  const streams: StreamClient[] = [];
  const raws: Raw[] = [];

  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
    for (const r of raws.splice(0)) r.socket.destroy();
  });

  it('answers every publish, with no socket error, while MAX_SUBSCRIBERS streams are open', async () => {
    for (let i = 0; i < MAX_SUBSCRIBERS; i++) streams.push(await openStream(base(), '/events/stream'));
    expect(streams.map((s) => s.status)).to.deep.equal(Array(MAX_SUBSCRIBERS).fill(200));

    let produced: Awaited<ReturnType<typeof produce>> = { statuses: [], errors: [] };
    const peak = await peakSockets(pid(), port(), async () => void (produced = await produce(base())));
    expect(produced.errors, 'socket errors').to.deep.equal([]);
    expect(produced.statuses.length).to.equal(PRODUCERS * PUBLISHES_EACH);
    expect(produced.statuses.filter((s) => s !== 202), 'publishes not accepted').to.deep.equal([]);
    expect(streams.filter((s) => s.isEnded()), 'streams ended').to.deep.equal([]);
    expect(peak, 'HTTP sockets held by the API').to.be.at.most(MAX_CONNECTIONS + MAX_SUBSCRIBERS);
  });

  it('refuses a waiting publish past MAX_WAITERS with 503 and Retry-After, enqueuing nothing, while plain publishes get 202', async () => {
    const receivedBefore = (await stats(base())).received;
    for (let i = 0; i < MAX_WAITERS; i++) raws.push(rawPublish(port(), '/publish?wait=30'));
    // Each waiter's event is queued before it waits: then all hold their slots.
    await waitFor(async () => (await stats(base())).received === receivedBefore + MAX_WAITERS, { what: 'every waiter queued' });

    // More than MAX_CONNECTIONS of them, one after the other, each on a socket the client
    // keeps open after its answer: past the cap the server closes the idle ones.
    const answered503 = async () => {
      const text = (await request(base(), 'GET', '/metrics')).body as string;
      return Number(/^aggregator_publish_requests_total\{status="503"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const metered503 = await answered503();
    const refused: Raw[] = [];
    const peak = await peakSockets(pid(), port(), async () => {
      for (let i = 0; i < MAX_CONNECTIONS + MAX_WAITERS; i++) {
        const r = rawPublish(port(), i % 2 === 0 ? '/publish?wait=5' : '/publish/batch?wait=1');
        refused.push(r);
        raws.push(r);
        await r.status;
      }
    });
    expect(await Promise.all(refused.map((r) => r.status)), 'waiters past MAX_WAITERS').to.deep.equal(Array(refused.length).fill(503));
    for (const r of refused) {
      expect(r.text()).to.match(/\r\nretry-after: \d+\r\n/i);
      expect(JSON.parse(r.text().split('\r\n\r\n')[1]!)).to.have.property('error', 'too_many_waiters');
    }
    // Each answered as every other request is: with its own request id, counted in the publish metrics.
    const ids = refused.map((r) => /\r\nx-request-id: (\S+)\r\n/i.exec(r.text())?.[1]);
    expect(ids.filter((id) => id === undefined), 'refusals without X-Request-Id').to.deep.equal([]);
    expect(new Set(ids).size).to.equal(refused.length);
    expect(await answered503()).to.equal(metered503 + refused.length);
    // A waiter that asks before sending its body is refused before `100 Continue`.
    const asking = net.connect(port(), '127.0.0.1');
    let first = '';
    asking.on('error', () => undefined);
    asking.write('POST /publish?wait=5 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\nExpect: 100-continue\r\n\r\n');
    await new Promise<void>((resolve) => {
      asking.on('data', (c) => {
        first += c.toString();
        if (first.includes('\r\n\r\n')) resolve();
      });
      asking.on('close', () => resolve());
    });
    asking.destroy();
    expect(first.split('\r\n')[0], 'first answer to Expect: 100-continue past MAX_WAITERS').to.equal('HTTP/1.1 503 Service Unavailable');
    expect(first).to.match(/\r\nx-request-id: \S+\r\n/i);
    // One more for a moment: a new socket is let in before the quiet one it replaces closes.
    expect(peak, 'HTTP sockets held by the API').to.be.at.most(MAX_CONNECTIONS + MAX_WAITERS + 1);
    // Closed from this side, and done once the API has closed its side too.
    for (const r of refused) r.socket.end();
    await Promise.all(refused.map((r) => r.closed));

    let produced: Awaited<ReturnType<typeof produce>> = { statuses: [], errors: [] };
    const peakProducing = await peakSockets(pid(), port(), async () => void (produced = await produce(base())));
    expect(produced.errors, 'socket errors').to.deep.equal([]);
    expect(produced.statuses.length).to.equal(PRODUCERS * PUBLISHES_EACH);
    expect(produced.statuses.filter((s) => s !== 202), 'publishes not accepted').to.deep.equal([]);
    expect(peakProducing, 'HTTP sockets held by the API').to.be.at.most(MAX_CONNECTIONS + MAX_WAITERS);
    // Nothing of a refused waiter was queued, and every waiter is still waiting.
    expect((await stats(base())).received).to.equal(receivedBefore + MAX_WAITERS + PRODUCERS * PUBLISHES_EACH);
    for (const w of raws.slice(0, MAX_WAITERS)) expect(w.text(), 'a waiter answered').to.equal('');

    // A waiter that goes frees its slot.
    for (const w of raws.slice(0, MAX_WAITERS)) w.socket.destroy();
    await waitFor(async () => (await request(base(), 'POST', '/publish?wait=0.5', event({ topic: 'budgets' }))).status === 202, {
      what: 'a waiter slot to be free again',
    });
  });
});
