// The live side of GET /events/stream in one API process: every subscriber of the process
// is fed from one read of the store per commit notice, whichever worker committed.
//
// Each subscriber has a cursor. A new one first reads its backlog itself, a page at a
// time, at its own pace; once a read comes back short it has seen everything stored when
// the read began, and it joins the live set if its cursor has reached the fan-out's
// (`liveSeq`, the last seq handed to the live set), else it reads on. The fan-out reads
// from `liveSeq` on every notice and hands each event only to subscribers whose cursor is
// behind it: so no event is skipped at the seam (the joiner's cursor is at or past
// `liveSeq`, and the fan-out delivers everything after it) and none is sent twice (the
// cursor only moves forward). The notice itself is only a hint that there is something
// to read: what is sent always comes from the store, in seq order, and since the store
// makes an event visible only after every smaller seq, reading past a cursor never skips.
// A subscriber whose cursor is recent catches up from the messages the fan-out has just
// sent (recent.ts) rather than from the store: resuming after a cut costs no read.
//
// Three parts: the feed (live-feed.ts: notices to pages for the live set), the catch-up
// (catch-up.ts: each new subscriber's backlog) and the registry (subscribers.ts: the
// open streams, their limit and their end).
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/log.js';
import type { Store } from '../../../shared/store/port.js';
import type { CommitFeed } from '../commits.js';
import { CatchUp } from './catch-up.js';
import { LiveFeed } from './live-feed.js';
import { SubscriberRegistry } from './subscribers.js';

type FanoutOptions = {
  store: Store;
  feed: CommitFeed;
  log: Logger;
  keepaliveMs: number;
  maxBufferBytes: number;
  maxSubscribers: number;
  /** Events per store read of a subscriber's backlog (default 500). */
  pageSize?: number;
  /**
   * Events per store read of the live fan-out (default 8 x pageSize): one read usually
   * covers a whole commit, and every subscriber gets one write per read, not one per 500.
   */
  livePageSize?: number;
  /** A notice can be lost (Redis reconnecting): one lastSeq() per process this often catches up. */
  safetyReadMs?: number;
  /** Messages kept for subscribers resuming near the head (default 2 x maxBufferBytes). */
  recentBytes?: number;
  /** Backlog reads from the store in flight at once (and per turn of the event loop). */
  storeReaders?: number;
};

export class Fanout {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly feed: LiveFeed;
  private readonly catchUp: CatchUp;
  private readonly registry: SubscriberRegistry;
  private closing: Promise<void> | undefined;

  constructor(o: FanoutOptions) {
    const pageSize = o.pageSize ?? 500;
    this.store = o.store;
    this.log = o.log;
    this.feed = new LiveFeed({
      store: o.store,
      feed: o.feed,
      log: o.log,
      maxBufferBytes: o.maxBufferBytes,
      pageSize: o.livePageSize ?? 8 * pageSize,
      safetyReadMs: o.safetyReadMs ?? 2000,
      recentBytes: o.recentBytes ?? 2 * o.maxBufferBytes,
    });
    this.catchUp = new CatchUp({ store: o.store, log: o.log, feed: this.feed, pageSize, storeReaders: o.storeReaders ?? 4 });
    this.registry = new SubscriberRegistry({
      log: o.log,
      keepaliveMs: o.keepaliveMs,
      maxBufferBytes: o.maxBufferBytes,
      maxSubscribers: o.maxSubscribers,
      onGone: (sub) => this.feed.leave(sub),
    });
  }

  /**
   * Starts a stream on `res` from `after` (undefined: from the newest event now). Throws
   * before anything is written, so the caller answers errors as JSON: 503 over the limit
   * or while stopping, and whatever the store throws.
   */
  async open(res: ServerResponse, q: { topic: string | undefined; after: number | undefined }): Promise<void> {
    // The store's end, even with a start point given: a start beyond it must not become the feed's.
    const head = await this.registry.reserve(() => this.store.lastSeq());
    const start = q.after ?? head;
    this.registry.refuseWhileStopping();
    // Gone while the start was read: its 'close' has passed, nobody would drop it later.
    if (res.destroyed || res.socket === null || res.socket.destroyed) return;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      // nginx and its kin would otherwise hold messages back to fill their buffers.
      'X-Accel-Buffering': 'no',
    });
    const sub = this.registry.add(res, q.topic, start);
    this.log.debug({ subscriber: sub.id, topic: q.topic, after: start }, 'stream: subscriber connected');
    // Sends the headers at once and tells the client where its stream starts.
    sub.send(`: after ${start}\n\n`);
    void this.catchUp.run(sub, head);
  }

  size(): number {
    return this.registry.size;
  }

  /** Ends every stream and takes no more; resolves once they are closed. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.feed.close();
      await this.registry.close();
    })();
    return this.closing;
  }
}

export function createFanout(o: FanoutOptions): Fanout {
  return new Fanout(o);
}
