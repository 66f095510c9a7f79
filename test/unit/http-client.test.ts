// The bench's load generator reads responses with its own HTTP/1.1 client; a misread
// response would stall a lane or count a failure as a success, and the bench would report
// figures that were never served. Each case runs against a real node:http server.
import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { Connection, prepareRequest } from '../../bench/http-client.js';

type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

async function serve(handler: Handler): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const srv = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => handler(req, Buffer.concat(parts).toString('utf8'), res));
  });
  srv.on('connection', () => connections++);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

const publish = (body: string) => prepareRequest('127.0.0.1', '/publish', 'application/json', body);

/** Runs `use` with a client connection to a server answering with `handler`; closes both. */
async function withServer(handler: Handler, use: (conn: Connection, connections: () => number) => Promise<void>): Promise<void> {
  const srv = await serve(handler);
  const conn = new Connection(srv.port, '127.0.0.1');
  try {
    await use(conn, srv.connections);
  } finally {
    conn.close();
    await srv.close();
  }
}

describe('bench HTTP client', () => {
  it('delivers the body intact and reads a content-length answer, reusing one connection', async () => {
    const seen: string[] = [];
    await withServer((req, body, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['content-type']} ${body}`);
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":1}');
    }, async (conn, connections) => {
      const body = JSON.stringify({ topic: 'tö', payload: 'x'.repeat(100_000) });
      for (let i = 0; i < 3; i++) expect(await conn.request(publish(body))).to.deep.equal({ status: 202, retryAfter: undefined });
      expect(seen).to.have.length(3);
      expect(seen[0]).to.equal(`POST /publish application/json ${body}`);
      expect(connections()).to.equal(1);
    });
  });

  it('reads a chunked answer to its end and keeps the connection for the next request', async () => {
    let n = 0;
    await withServer((_req, _body, res) => {
      n++;
      res.writeHead(n === 1 ? 500 : 200);
      res.write('a'.repeat(17));
      res.write('b'.repeat(4096));
      res.end();
    }, async (conn, connections) => {
      expect((await conn.request(publish('{}'))).status).to.equal(500);
      expect((await conn.request(publish('{}'))).status).to.equal(200);
      expect(connections()).to.equal(1);
    });
  });

  it('reports 503 with its Retry-After, and opens a new connection after Connection: close', async () => {
    await withServer((_req, _body, res) => {
      res.writeHead(503, { 'retry-after': '2', connection: 'close', 'content-length': '2' }).end('no');
    }, async (conn, connections) => {
      expect(await conn.request(publish('{}'))).to.deep.equal({ status: 503, retryAfter: 2 });
      expect(await conn.request(publish('{}'))).to.deep.equal({ status: 503, retryAfter: 2 });
      expect(connections()).to.equal(2);
    });
  });

  it('rejects the request under way when the server drops the connection, and the next one succeeds', async () => {
    let n = 0;
    await withServer((req, _body, res) => {
      n++;
      if (n === 1) req.socket.destroy();
      else res.writeHead(202).end('{}');
    }, async (conn, connections) => {
      let failure: unknown;
      await conn.request(publish('{}')).catch((err: unknown) => (failure = err));
      expect(failure).to.be.instanceOf(Error);
      expect((await conn.request(publish('{}'))).status).to.equal(202);
      expect(connections()).to.equal(2);
    });
  });

  it('refuses a second request while one is under way on the same connection', async () => {
    await withServer((_req, _body, res) => setTimeout(() => res.writeHead(202).end('{}'), 50), async (conn) => {
      const first = conn.request(publish('{}'));
      let failure: unknown;
      await conn.request(publish('{}')).catch((err: unknown) => (failure = err));
      expect(String(failure)).to.match(/already under way/);
      expect((await first).status).to.equal(202);
    });
  });
});
