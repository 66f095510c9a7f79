// What a careless or hostile client sends beside the events: NUL characters in read
// parameters, `Expect` headers, and an operator's empty keys and secret URLs in the
// configuration. Each refused plainly, in the contract's JSON, before any harm.
import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startCluster, type Cluster, type StoreKind } from '../../tools/harness/cluster.js';
import { get, publish } from '../../tools/harness/http.js';
import { ROOT } from '../../tools/harness/root.js';
import { requirePostgres } from '../support/postgres.js';
import { event } from '../support/http.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

/** Sends `head` (request line and headers), reads until the first answer's head is complete. */
function rawHead(baseUrl: string, head: string): Promise<{ socket: net.Socket; text: () => string; first: Promise<string> }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      let text = '';
      const first = new Promise<string>((res) => {
        socket.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('\r\n\r\n')) res(text);
        });
        socket.on('close', () => res(text));
      });
      socket.write(head);
      resolve({ socket, text: () => text, first });
    });
    socket.on('error', reject);
  });
}

/** Waits until the whole answer is in, the connection closed by the server or the body complete. */
async function untilClosed(socket: net.Socket, text: () => string): Promise<string> {
  if (socket.destroyed || socket.readableEnded) return text();
  await new Promise((r) => socket.once('close', r));
  return text();
}

describe('hostile input', function () {
  this.timeout(90_000);
  let redis: TestRedis;
  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  for (const store of ['sqlite', 'postgres'] as StoreKind[]) {
    describe(`%00 in a read parameter (${store})`, () => {
      let cluster: Cluster;
      before(async function () {
        if (store === 'postgres') await requirePostgres(this);
        cluster = await startCluster({ redisUrl: redis.url, workers: 0, store });
      });
      after(async () => {
        await cluster?.destroy();
      });

      for (const url of [
        '/events?topic=%00',
        '/events?topic=a%00b',
        '/events?after=1%00',
        '/events/%00/x',
        '/events/t/e%00',
        '/events/stream?topic=%00',
        '/topics?after=%00',
      ]) {
        it(`answers 400 invalid_query to GET ${url}`, async () => {
          const r = await get(cluster.baseUrl, url);
          expect(r.status, JSON.stringify(r.body)).to.equal(400);
          expect(r.body).to.include({ error: 'invalid_query' });
        });
      }

      it('answers 400 to DELETE with %00, and reads without it still work', async () => {
        const r = await fetch(`${cluster.baseUrl}/events/t/%00`, { method: 'DELETE' });
        expect(r.status).to.equal(400);
        expect((await get(cluster.baseUrl, '/events?topic=t')).status).to.equal(200);
        expect((await get(cluster.baseUrl, '/events/t/%2500')).status).to.equal(404);
      });
    });
  }

  describe('Expect', () => {
    let cluster: Cluster;
    before(async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 0, env: { API_KEY: 'k-expect', MAX_BODY_BYTES: '65536' } });
    });
    after(async () => {
      await cluster?.destroy();
    });

    it('answers an expectation other than 100-continue with a JSON 417', async () => {
      const { socket, text, first } = await rawHead(
        cluster.baseUrl,
        'POST /publish HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n',
      );
      expect(await first).to.match(/^HTTP\/1\.1 417 /);
      const all = await untilClosed(socket, text);
      expect(JSON.parse(all.slice(all.indexOf('\r\n\r\n') + 4))).to.include({ error: 'expectation_failed' });
      expect(all, 'a request id, as on every answer').to.match(/\r\nx-request-id: \S+\r\n/i);
    });

    it('refuses a request without its key before 100 Continue, however the router would spell its path', async () => {
      for (const path of ['/publish', '/Publish/', '/PUBLISH/batch?wait=1']) {
        const { socket, text, first } = await rawHead(
          cluster.baseUrl,
          `POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
        );
        expect(await first, path).to.match(/^HTTP\/1\.1 401 /);
        const all = await untilClosed(socket, text);
        expect(all, path).not.to.include('100 Continue');
        expect(all, 'a request id, as on every answer').to.match(/\r\nx-request-id: \S+\r\n/i);
        expect(JSON.parse(all.slice(all.indexOf('\r\n\r\n') + 4))).to.include({ error: 'unauthorized' });
      }
    });

    it('refuses a body declared too large before 100 Continue', async () => {
      const { socket, text, first } = await rawHead(
        cluster.baseUrl,
        'POST /publish HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nAuthorization: Bearer k-expect\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n',
      );
      expect(await first).to.match(/^HTTP\/1\.1 413 /);
      const all = await untilClosed(socket, text);
      expect(JSON.parse(all.slice(all.indexOf('\r\n\r\n') + 4))).to.include({ error: 'payload_too_large' });
    });

    it('tells a request that may succeed to continue, and accepts it', async () => {
      const body = JSON.stringify(event({ topic: 'expect' }));
      const { socket, text, first } = await rawHead(
        cluster.baseUrl,
        `POST /publish HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nAuthorization: Bearer k-expect\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
      );
      expect(await first).to.match(/^HTTP\/1\.1 100 Continue/);
      socket.write(body);
      const all = await untilClosed(socket, text);
      expect(all).to.match(/HTTP\/1\.1 202 /);
      expect((await publish(cluster.baseUrl, event(), { headers: { authorization: 'Bearer k-expect' } })).status).to.equal(202);
    });
  });

  describe('configuration', () => {
    /** Starts the API with `env` and returns how it exited and what it said. */
    function startApi(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
      return new Promise((resolve) => {
        const child = spawn(process.execPath, [path.join(ROOT, 'dist/services/api/main.js')], {
          env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), DATA_DIR: os.tmpdir(), PORT: '0', REDIS_URL: redis.url, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (c: Buffer) => (output += c.toString()));
        child.stderr.on('data', (c: Buffer) => (output += c.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, output });
        });
      });
    }

    for (const name of ['API_KEY', 'READ_API_KEY']) {
      it(`stops the API when ${name} is set but empty, naming it`, async () => {
        const { code, output } = await startApi({ [name]: '' });
        expect(code).to.equal(1);
        expect(output).to.include(name).and.include('empty');
      });
    }

    it('never echoes a secret in a configuration error', async () => {
      const { code, output } = await startApi({ REDIS_URL: 'http://user:pw-hunter2@redis:6379', API_KEY: ' ' });
      expect(code).to.equal(1);
      expect(output).to.include('REDIS_URL').and.include('API_KEY');
      expect(output).not.to.include('hunter2');
    });
  });
});
