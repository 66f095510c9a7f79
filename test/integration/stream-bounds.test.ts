// GET /events/stream is bounded: a reader that stops reading is cut loose and the API's
// memory stays flat, the subscriber limit answers 503, idle streams get keepalive comments
// and outlive REQUEST_TIMEOUT_MS, READ_API_KEY guards the stream, and SIGTERM ends every
// stream within the shutdown deadline. Real processes; each case on an API process of its
// own started with the settings it needs, beside the cluster's.
import fs from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { useCluster } from '../support/suite.js';
import { drained, publish } from '../../tools/harness/http.js';
import { follow, openStream, type StreamClient } from '../../tools/harness/sse.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';

const KEY = 'k-stream';

/** Resident memory of a process, in MB. */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A client that sends its request and then never reads a byte. */
async function stalledClient(baseUrl: string, path: string): Promise<{ socket: net.Socket; closed: () => boolean }> {
  const url = new URL(baseUrl);
  const socket = net.connect(Number(url.port), url.hostname);
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`);
  socket.pause();
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  return { socket, closed: () => closed };
}

describe('GET /events/stream: bounds', function () {
  const shared = useCluster({ workers: 2 });
  const base = () => shared.cluster.baseUrl;
  let received = 0;
  const clients: StreamClient[] = [];
  const sockets: net.Socket[] = [];

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const s of sockets.splice(0)) s.destroy();
  });

  async function stream(url: string, path: string, opts: Parameters<typeof openStream>[2] = {}): Promise<StreamClient> {
    const c = await openStream(url, path, opts);
    clients.push(c);
    return c;
  }

  async function send(events: Record<string, unknown>[], batch: number): Promise<void> {
    for (let i = 0; i < events.length; i += batch) {
      const r = await publish(base(), { events: events.slice(i, i + batch) });
      expect(r.status, JSON.stringify(r.body)).to.equal(202);
      received += Math.min(batch, events.length - i);
    }
  }

  it('cuts loose a subscriber that never reads while another keeps receiving, and the API stays flat in memory', async () => {
    // Default limits: STREAM_MAX_BUFFER_BYTES is 4 MiB.
    const api = await shared.cluster.startExtraApi();
    const topic = `bulk-${randomUUID().slice(0, 8)}`;
    const path = `/events/stream?topic=${topic}`;
    // The start of a stream is fixed once its headers are in.
    const reader = await follow(api.baseUrl, path);
    const stalled = await stalledClient(api.baseUrl, path);
    sockets.push(stalled.socket);
    const pid = api.proc.child.pid!;
    const before = rssMb(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 100);
    // About 240 MB of events in eight parts, far past the limit and the kernel's socket
    // buffers. The first four warm up what is bounded anyway (SQLite's page cache, the
    // fan-out's recent pages, and V8's slack: buffers that outlive a young-generation
    // collection are freed only at a full one, which V8 starts after some 64 MB of them);
    // a server that kept what the stalled client does not read would grow by the last
    // four, some 120 MB. A flat one grew by 0 to 31 MB over its last half, depending on
    // when V8 ran its full collections (Node 20 and 24, with half as much data).
    const pad = 'x'.repeat(3000);
    const part = 10_000;
    const parts = 8;
    const peaks: number[] = [];
    try {
      for (let k = 0; k < parts; k++) {
        await send(Array.from({ length: part }, (_, i) => event({ topic, payload: { i: k * part + i, pad } })), 250);
        await drained(base(), received, 90_000);
        const want = (k + 1) * part;
        await waitFor(() => reader.events.length >= want, { timeoutMs: 60_000, what: `the reader to get ${want} events` });
        peaks.push(peak);
      }
    } finally {
      clearInterval(sampler);
      reader.stop();
    }
    // Two workers commit jobs in either order: what matters is each once, in seq order.
    const seqs = reader.events.map((e) => e.seq as number);
    expect(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!), 'in seq order').to.equal(true);
    expect(new Set(reader.events.map((e) => e.payload.i)).size).to.equal(part * parts);
    expect(api.proc.log()).to.match(/"reason":"too_slow".*subscriber too slow, disconnected/);
    // The stalled connection was closed: reading it now finds its end, far short of the data.
    let bytes = 0;
    stalled.socket.on('data', (c: Buffer) => (bytes += c.length));
    stalled.socket.resume();
    await waitFor(stalled.closed, { timeoutMs: 10_000, what: 'the stalled connection to be closed by the server' });
    const streamedMb = (part * parts * (pad.length + 150)) / 2 ** 20;
    console.log(
      `      API RSS ${before.toFixed(0)} MB before; peak after each eighth of the ${streamedMb.toFixed(0)} MB streamed: ${peaks.map((p) => p.toFixed(0)).join(', ')} MB; the stalled client got ${(bytes / 2 ** 20).toFixed(1)} MB before it was cut; the reader resumed ${reader.resumed()} times`,
    );
    expect(bytes / 2 ** 20).to.be.below(streamedMb / 4);
    expect(peaks[parts - 1]! - peaks[parts / 2 - 1]!, 'RSS growth in MB over the last half of the data').to.be.below(streamedMb / 4);
    expect((await api.proc.term()).code).to.equal(0);
  });

  it('answers 503 too_many_subscribers with Retry-After past MAX_SUBSCRIBERS, and frees a slot when a stream closes', async () => {
    const api = await shared.cluster.startExtraApi({ MAX_SUBSCRIBERS: '2' });
    const a = await stream(api.baseUrl, '/events/stream');
    const b = await stream(api.baseUrl, '/events/stream?topic=x');
    expect([a.status, b.status]).to.deep.equal([200, 200]);
    const over = await stream(api.baseUrl, '/events/stream');
    expect(over.status).to.equal(503);
    expect(over.headers['retry-after']).to.match(/^\d+$/);
    expect(over.headers['content-type']).to.match(/^application\/json/);
    expect(over.body).to.have.property('error', 'too_many_subscribers');
    expect(over.body).to.have.property('message').that.is.a('string');
    a.close();
    await waitFor(
      async () => {
        const again = await stream(api.baseUrl, '/events/stream');
        return again.status === 200;
      },
      { timeoutMs: 3000, what: 'the closed stream to free its slot' },
    );
    expect((await api.proc.term()).code).to.equal(0);
  });

  describe('on an API with READ_API_KEY, STREAM_KEEPALIVE_MS=200 and REQUEST_TIMEOUT_MS=1000', () => {
    let url: string;
    const auth = { authorization: `Bearer ${KEY}` };
    before(async () => {
      url = (
        await shared.cluster.startExtraApi({ READ_API_KEY: KEY, STREAM_KEEPALIVE_MS: '200', REQUEST_TIMEOUT_MS: '1000', HEADERS_TIMEOUT_MS: '1000' })
      ).baseUrl;
    });

    it('answers 401 without the read key or with a wrong one, and streams with it', async () => {
      const none = await stream(url, '/events/stream');
      expect(none.status).to.equal(401);
      expect(none.body).to.have.property('error', 'unauthorized');
      const wrong = await stream(url, '/events/stream', { headers: { authorization: 'Bearer nope' } });
      expect(wrong.status).to.equal(401);
      const right = await stream(url, '/events/stream', { headers: auth });
      expect(right.status).to.equal(200);
      expect(right.headers['content-type']).to.equal('text/event-stream; charset=utf-8');
      expect(right.headers['cache-control']).to.equal('no-cache');
      expect(right.headers['x-accel-buffering']).to.equal('no');
    });

    it('sends a keepalive comment while idle, and an idle stream outlives REQUEST_TIMEOUT_MS', async () => {
      const topic = `idle-${randomUUID().slice(0, 8)}`;
      const c = await stream(url, `/events/stream?topic=${topic}`, { headers: auth });
      await new Promise((r) => setTimeout(r, 3000));
      expect(c.isEnded(), 'the stream is still open after 3 s').to.equal(false);
      const keepalives = c.commentAt.filter((_, i) => c.comments[i] === 'keepalive');
      expect(keepalives.length).to.be.at.least(8);
      const gaps = c.commentAt.slice(1).map((t, i) => t - c.commentAt[i]!);
      console.log(`      ${keepalives.length} keepalives in 3 s; longest gap ${Math.max(...gaps)} ms (interval 200 ms)`);
      expect(Math.max(...gaps), 'no silence of a whole interval, give or take a busy machine').to.be.below(400);
      const e = event({ topic });
      expect((await publish(base(), e)).status).to.equal(202);
      received += 1;
      await waitFor(() => c.events.length === 1, { what: 'the event on the long-open stream' });
      expect(c.events[0]).to.include({ topic, event_id: e.event_id });
    });
  });

  it('ends every stream on SIGTERM and the API exits 0 within 10 s', async () => {
    const api = await shared.cluster.startExtraApi();
    const idle = await stream(api.baseUrl, '/events/stream');
    // In its backlog: the store holds the 120 MB of the first test.
    const backlog = await stream(api.baseUrl, '/events/stream?after=0');
    const stalled = await stalledClient(api.baseUrl, '/events/stream?after=0');
    sockets.push(stalled.socket);
    await waitFor(() => backlog.events.length > 0 && idle.comments.length > 0, { what: 'the streams to run' });
    const started = Date.now();
    const exit = await api.proc.term();
    const ms = Date.now() - started;
    expect(exit, api.proc.log().slice(-2000)).to.deep.equal({ code: 0, signal: null });
    expect(ms).to.be.below(10_000);
    await waitFor(() => idle.isEnded() && backlog.isEnded(), { timeoutMs: 5000, what: 'both streams to end' });
    expect(api.proc.log()).to.match(/"clean":true,"msg":"stopped"/);
    console.log(`      SIGTERM to exit: ${ms} ms with 3 open streams (one idle, one in its backlog, one never reading)`);
  });
});
