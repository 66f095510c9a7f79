// Sockets that connect and send nothing, as many as the connection cap: they must give way
// to a client that asks something, not refuse it until their header deadline.
import net from 'node:net';
import { expect } from 'chai';
import { get } from '../../tools/harness/http.js';
import { useCluster } from '../support/suite.js';

const CAP = 16;

describe('silent sockets at the connection cap', function () {
  this.timeout(60_000);
  // A header deadline far longer than the test: only making room can let the client in.
  const shared = useCluster({ workers: 0, env: { MAX_CONNECTIONS: String(CAP), HEADERS_TIMEOUT_MS: '60000', REQUEST_TIMEOUT_MS: '120000' } });

  it('closes the oldest silent socket to serve a new client', async () => {
    const port = Number(new URL(shared.cluster.baseUrl).port);
    const silent: net.Socket[] = [];
    const closed: Promise<void>[] = [];
    try {
      for (let i = 0; i < CAP; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        closed.push(new Promise((r) => s.once('close', () => r())));
        await new Promise((r) => s.once('connect', r));
        silent.push(s);
      }
      // Let the server take every one of them before the client comes.
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 3; i++) {
        const r = await get(shared.cluster.baseUrl, '/health');
        expect(r.status).to.equal(200);
      }
      // The oldest gave way first.
      await closed[0];
    } finally {
      for (const s of silent) s.destroy();
    }
  });
});
