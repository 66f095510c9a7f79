// A keep-alive socket whose next request is already waiting when its idle deadline fires
// is answered, not reset. Node runs timers before it reads sockets, so a busy event loop
// used to close such a socket from the timer: the producer saw ECONNRESET or EPIPE.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { closeIdleAfterPendingReads } from '../../services/api/http/connections.js';

const KEEP_ALIVE_MS = 200;
// Node waits a second past keepAliveTimeout before it closes (a margin for clients that
// reuse a socket right at the advertised timeout); the stall must outlast both.
const STALL_MS = KEEP_ALIVE_MS + 1500;

/** Serves GET /: answers "ok", keeps the socket alive for KEEP_ALIVE_MS. */
async function server(withFix: boolean): Promise<{ srv: http.Server; port: number; close(): Promise<void> }> {
  const srv = http.createServer({ keepAliveTimeout: KEEP_ALIVE_MS }, (_req, res) => res.end('ok'));
  if (withFix) closeIdleAfterPendingReads(srv);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  return { srv, port, close: () => new Promise((resolve) => srv.close(() => resolve())) };
}

// The client runs in a process of its own, so that its second request arrives while this
// process is stalled: sent from here, it would be read before any stall could begin.
const CLIENT = `
const net = require('node:net');
const socket = net.connect(Number(process.argv[1]), '127.0.0.1');
const ask = 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n';
let reply = '';
let answers = 0;
const done = (what) => { console.log(what); process.exit(0); };
socket.on('connect', () => socket.write(ask));
socket.on('data', (chunk) => {
  reply += chunk.toString();
  const seen = reply.split('HTTP/1.1 200').length - 1;
  if (seen === answers) return;
  answers = seen;
  if (answers === 2) done('answered');
  else setTimeout(() => socket.write(ask), Number(process.argv[2]));
});
socket.on('error', (err) => done(err.code || err.message));
socket.on('close', () => done('closed'));
`;

/**
 * Two requests on one socket. After the first answer this process stalls (a big body being
 * parsed, a long GC) past the keep-alive deadline, and the second request arrives meanwhile.
 */
async function secondRequestDuringStall(srv: http.Server, port: number): Promise<string> {
  srv.once('request', () =>
    setTimeout(() => {
      // Not within a timer callback: that phase would not see the deadline due before the read.
      setImmediate(() => {
        const until = Date.now() + STALL_MS;
        while (Date.now() < until);
      });
    }, 20),
  );
  const child = spawn(process.execPath, ['-e', CLIENT, String(port), String(KEEP_ALIVE_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((resolve) => child.once('exit', resolve));
  return out.trim();
}

describe('keep-alive deadline', () => {
  it('answers a request that waited in the socket while the event loop was busy', async () => {
    const fixed = await server(true);
    try {
      for (let i = 0; i < 2; i++) expect(await secondRequestDuringStall(fixed.srv, fixed.port)).to.equal('answered');
    } finally {
      await fixed.close();
    }
  });

  it('still closes a socket that stays idle past the deadline', async () => {
    const fixed = await server(true);
    try {
      const closedAfter = await new Promise<number>((resolve) => {
        const socket = net.connect(fixed.port, '127.0.0.1');
        let answeredAt = 0;
        socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
        socket.on('data', () => (answeredAt = Date.now()));
        socket.on('close', () => resolve(Date.now() - answeredAt));
      });
      expect(closedAfter).to.be.within(KEEP_ALIVE_MS - 50, KEEP_ALIVE_MS + 1500);
    } finally {
      await fixed.close();
    }
  });

  it('is a race Node itself loses (the reason for the fix)', async () => {
    const plain = await server(false);
    try {
      const got = await secondRequestDuringStall(plain.srv, plain.port);
      expect(got).to.be.oneOf(['ECONNRESET', 'EPIPE', 'closed']);
    } finally {
      await plain.close();
    }
  });
});
