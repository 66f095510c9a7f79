// The live fan-out of GET /events/stream against a real SQLite store and real sockets; the
// commit notices are handed in by the test, as the workers' notices would be.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { CommitFeed } from '../../services/api/commits.js';
import { createFanout, type Fanout } from '../../services/api/read/fanout.js';
import { createLogger } from '../../shared/log.js';
import type { CommitNotice } from '../../shared/notices.js';
import type { Store } from '../../shared/store/port.js';
import { openSqliteStore, type SqliteStore } from '../../shared/store/sqlite/store.js';
import { waitFor } from '../../tools/harness/wait.js';

const event = (id: string) => ({ topic: 't', event_id: id, timestamp: '2025-10-24T00:00:00Z', source: 'test', payload: {} });

/** A feed the test drives: `notify(seq)` is a worker's notice of a commit through `seq`. */
function testFeed(): CommitFeed & { notify(seq: number): void } {
  const listeners: ((n: CommitNotice) => void)[] = [];
  return {
    onNotice: (l) => void listeners.push(l),
    onReconnect: () => undefined,
    close: () => Promise.resolve(),
    notify: (seq) => listeners.forEach((l) => l({ seq, jobs: [], committed_at: Date.now() })),
  };
}

type Stream = { text: string; req: http.ClientRequest };

describe('stream fan-out', function () {
  this.timeout(20_000);
  let dir: string;
  let store: SqliteStore;
  let fanout: Fanout;
  let server: http.Server;
  let base: string;
  let reads: number;
  let feed: ReturnType<typeof testFeed>;
  const streams: Stream[] = [];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-fanout-'));
    store = openSqliteStore({ dataDir: dir });
    reads = 0;
    // Every page read, counted: the fan-out's cost is its reads of the store.
    const counted = new Proxy(store, {
      get: (target, key, receiver) =>
        key === 'listEventsJson'
          ? (...args: Parameters<Store['listEventsJson']>) => {
              reads++;
              return target.listEventsJson(...args);
            }
          : (Reflect.get(target, key, receiver) as unknown),
    });
    feed = testFeed();
    fanout = createFanout({ store: counted, feed, log: createLogger({ name: 'test', level: 'silent' }), keepaliveMs: 15_000, maxBufferBytes: 1 << 20, maxSubscribers: 10 });
    server = http.createServer((req, res) => {
      const after = new URL(req.url!, 'http://x').searchParams.get('after');
      fanout.open(res, { topic: undefined, after: after === null ? undefined : Number(after) }).catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterEach(async () => {
    for (const s of streams.splice(0)) s.req.destroy();
    await fanout.close();
    await new Promise((resolve) => server.close(resolve));
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function open(query: string): Stream {
    const s: Stream = { text: '', req: http.get(`${base}/${query}`) };
    s.req.on('response', (res) => res.on('data', (chunk: Buffer) => (s.text += chunk.toString())));
    s.req.on('error', () => undefined);
    streams.push(s);
    return s;
  }

  async function commit(id: string): Promise<number> {
    const [outcome] = await store.commitJobs([{ id: `job-${id}`, events: [event(id)] }]);
    const seq = outcome!.results[0]!.seq;
    feed.notify(seq);
    return seq;
  }

  it('serves a subscriber from now on beside one that starts beyond the last seq, reading the store only on notices', async () => {
    await commit('a');
    await commit('b');
    const ahead = open('?after=1000');
    await waitFor(() => ahead.text.includes(': after 1000'), { what: 'the stream ahead to start' });
    const now = open('');
    await waitFor(() => now.text.includes(': after 2'), { what: 'the stream from now to start' });
    const readsBefore = reads;
    const third = await commit('c');
    await waitFor(() => now.text.includes(`id: ${third}\n`), { what: 'the new event on the stream from now' });
    const fourth = await commit('d');
    await waitFor(() => now.text.includes(`id: ${fourth}\n`), { what: 'the next event on the stream from now' });
    // Two notices: a read or two each, not a loop over the store while a cursor is ahead of it.
    expect(reads - readsBefore, 'store reads for two notices').to.be.at.most(8);
    expect(ahead.text, 'nothing at or below its start for the stream ahead').not.to.include('id: ');
  });

  it('gives the subscriber that starts beyond the last seq the events past its start, once', async () => {
    await commit('a');
    const ahead = open('?after=3');
    await waitFor(() => ahead.text.includes(': after 3'), { what: 'the stream ahead to start' });
    for (const id of ['b', 'c', 'd', 'e']) await commit(id);
    await waitFor(() => ahead.text.includes('id: 5\n'), { what: 'the events past its start' });
    expect(ahead.text.match(/^id: \d+$/gm)).to.deep.equal(['id: 4', 'id: 5']);
  });
});
