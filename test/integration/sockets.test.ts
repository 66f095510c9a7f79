// Slow, idle and broken clients, each a real socket (net.connect) against the real API:
// bytes in flight are the bytes that arrived, headers and bodies have deadlines, idle
// sockets give way at the connection cap, and what Node's parser refuses is answered in
// the contract's JSON.
import net from 'node:net';
import { expect } from 'chai';
import { publish } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';
import { useCluster } from '../support/suite.js';

const CAP = 24;
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 4000;

type Raw = { status: number; headers: string; body: any; text: string; ms: number };

/** What the server wrote before it closed the socket, read as one HTTP/1.1 answer. */
function parse(text: string, ms: number): Raw {
  const [head = '', body = ''] = text.split('\r\n\r\n', 2);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  return { status, headers: head, body: parsed, text, ms };
}

describe('sockets', function () {
  this.timeout(60_000);
  const shared = useCluster({
    workers: 0,
    env: {
      MAX_CONNECTIONS: String(CAP),
      HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    },
  });
  const port = () => Number(new URL(shared.cluster.baseUrl).port);

  /** Writes `first`, then `trickle` every 200 ms, until the server closes the socket. */
  function client(first: string | Buffer, trickle?: string): { socket: net.Socket; closed: Promise<Raw> } {
    const started = Date.now();
    const socket = net.connect(port(), '127.0.0.1');
    let reply = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(first);
      if (trickle !== undefined) timer = setInterval(() => socket.writable && socket.write(trickle), 200);
    });
    socket.on('data', (c) => (reply += c.toString()));
    socket.on('error', () => undefined);
    const closed = new Promise<Raw>((resolve) =>
      socket.on('close', () => {
        clearInterval(timer);
        resolve(parse(reply, Date.now() - started));
      }),
    );
    return { socket, closed };
  }

  /** Opens a socket, asks GET /health, and leaves the socket open (keep-alive) once answered. */
  function idleKeepAlive(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port(), '127.0.0.1');
      socket.on('connect', () => socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
      socket.once('data', (c) => (c.toString().startsWith('HTTP/1.1 200') ? resolve(socket) : reject(new Error(c.toString()))));
      socket.on('error', () => undefined);
      socket.once('close', () => reject(new Error('closed before its answer')));
    });
  }

  it('counts the bytes that arrived, not those declared: 16 trickling 16 MiB bodies block no publish', async () => {
    const head = `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${16 * 2 ** 20}\r\n\r\n[`;
    const slow = Array.from({ length: 16 }, () => client(head, ' '));
    try {
      await new Promise((r) => setTimeout(r, 500));
      const r = await publish(shared.cluster.baseUrl, event({ topic: 'beside-slow-bodies' }));
      expect(r.status, JSON.stringify(r.body)).to.equal(202);
      // The body deadline: each slow body is cut with a JSON 408.
      const answers = await Promise.all(slow.map((s) => s.closed));
      for (const a of answers) {
        expect(a.status, a.text).to.equal(408);
        expect(a.body).to.include({ error: 'request_timeout' });
        expect(a.ms).to.be.below(REQUEST_TIMEOUT_MS + 2500);
      }
    } finally {
      for (const s of slow) s.socket.destroy();
    }
  });

  it('cuts headers that never end with a JSON 408 once HEADERS_TIMEOUT_MS has passed', async () => {
    const a = await client('POST /publish HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n').closed;
    expect(a.status, a.text).to.equal(408);
    expect(a.body).to.include({ error: 'request_timeout' });
    expect(a.body.message).to.be.a('string');
    expect(a.ms).to.be.below(HEADERS_TIMEOUT_MS + 2500);
  });

  it('closes idle keep-alive sockets to make room for new ones at the cap', async () => {
    const idle = await Promise.all(Array.from({ length: CAP }, () => idleKeepAlive()));
    try {
      // Every slot is taken by an idle socket: a new client is served, not turned away.
      const fresh = client('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const a = await fresh.closed;
      expect(a.status, a.text || 'closed with no answer').to.equal(200);
      await waitFor(() => idle.some((s) => s.destroyed || s.readableEnded), { timeoutMs: 2000, what: 'an idle socket to be closed' });
    } finally {
      for (const s of idle) s.destroy();
    }
  });

  it('turns new sockets away while every connection is busy, and serves again after', async () => {
    // Headers begun and not finished: a request under way, which is never cut for a newcomer.
    const busy = Array.from({ length: CAP }, () => client('GET /health HTTP/1.1\r\nHost: x\r\n'));
    try {
      await new Promise((r) => setTimeout(r, 200));
      const turnedAway = await client('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n').closed;
      expect(turnedAway.text).to.equal('');
    } finally {
      for (const b of busy) b.socket.destroy();
    }
    await waitFor(async () => (await client('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n').closed).status === 200, {
      what: 'the API to serve again',
    });
  });

  for (const [what, request, status, error] of [
    ['a malformed request line', 'THIS IS NOT HTTP\r\n\r\n', 400, 'bad_request'],
    ['a Content-Length that is not a number', 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, 'bad_request'],
    ['two Content-Lengths that disagree', 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}', 400, 'bad_request'],
    ['Content-Length beside chunked', 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'bad_request'],
    ['headers over 16 KiB', `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large'],
  ] as const) {
    it(`answers ${what} with ${status} ${error} in JSON`, async () => {
      const a = await client(request).closed;
      expect(a.status, a.text).to.equal(status);
      expect(a.headers).to.match(/content-type: application\/json/i);
      expect(a.body, a.text).to.include({ error });
      expect(a.body.message).to.be.a('string').that.is.not.empty;
    });
  }
});
