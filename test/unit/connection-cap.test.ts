// At MAX_CONNECTIONS, only the socket quiet for longest gives way to a new one. Node's
// closeIdleConnections(), which the cap used to call, closed every idle socket at once: a
// producer between two requests lost its connection too (and, had its next request been
// on the way, that request). A real server with the cap, a client in a process of its own.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { ConnectionCap } from '../../services/api/http/connections.js';
import { createLogger } from '../../shared/log.js';

const STALL_MS = 600;

// A: one request, then idle. B: one request, then a second one 300 ms later. C: a new
// socket 200 ms after B's first answer, with one request. Both come while the server stalls.
// The order the server reads them in does not matter: A has been quiet for longest.
const CLIENT = `
const net = require('node:net');
const port = Number(process.argv[1]);
const ask = 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n';
const outcome = {};
const sockets = {};
const report = () => { console.log(JSON.stringify(outcome)); process.exit(0); };
// Once A is closed and C answered, B asks a third time: it still has its socket, or not.
const check = () => {
  if (String(outcome.b).includes('closed') || outcome.b === 3) report();
  if (String(outcome.a).includes('closed') && outcome.b === 2 && outcome.c === 1 && !sockets.third) {
    sockets.third = true;
    sockets.b.write(ask);
  }
};
function client(name, onFirst) {
  const s = (sockets[name] = net.connect(port, '127.0.0.1'));
  let reply = '';
  s.on('connect', () => s.write(ask));
  s.on('data', (c) => {
    reply += c.toString();
    const answers = reply.split('HTTP/1.1 200').length - 1;
    outcome[name] = answers;
    if (answers === 1 && onFirst) onFirst(s);
    check();
  });
  s.on('error', () => undefined);
  s.on('close', () => {
    outcome[name] = (outcome[name] || 0) + ' closed';
    check();
  });
  return s;
}
client('a');
setTimeout(() => client('b', (s) => {
  setTimeout(() => client('c'), 200);
  setTimeout(() => s.write(ask), 300);
}), 200);
setTimeout(report, 15000);
`;

describe('connection cap', function () {
  this.timeout(30_000);
  it('closes only the socket quiet for longest to make room, not a producer between two requests', async () => {
    let requests = 0;
    const srv = http.createServer((_req, res) => {
      // After B's first answer, the server is busy while B asks again and C connects.
      if (++requests === 2) {
        setImmediate(() => {
          const until = Date.now() + STALL_MS;
          while (Date.now() < until);
        });
      }
      res.end('ok');
    });
    new ConnectionCap(srv, 2, createLogger({ name: 'test', level: 'silent' }));
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      const child = spawn(process.execPath, ['-e', CLIENT, String((srv.address() as net.AddressInfo).port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      await new Promise((resolve) => child.once('exit', resolve));
      // A gave way; B kept its socket (the old cap closed it too) for a third request, and C was served.
      expect(JSON.parse(out)).to.deep.equal({ a: '1 closed', b: 3, c: 1 });
    } finally {
      srv.closeAllConnections();
      await new Promise((resolve) => srv.close(resolve));
    }
  });
});
