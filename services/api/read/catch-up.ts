// The fan-out's catch-up (fanout.ts): a new subscriber reads its backlog itself, a page at
// a time, at its own pace (from the feed's recent messages when its cursor is recent, else
// from the store), then joins the live set. Once a store read comes back short it has seen
// everything stored when the read began, and it joins if its cursor has reached the feed's,
// else it reads on.
import type { Logger } from '../../../shared/log.js';
import type { Store } from '../../../shared/store/port.js';
import { limiter } from './limiter.js';
import type { LiveFeed } from './live-feed.js';
import { encodePage, slice } from './recent.js';
import type { Subscriber } from './sse.js';

const PIECE_BYTES = 64 * 1024;

type CatchUpOptions = {
  store: Store;
  log: Logger;
  feed: LiveFeed;
  /** Events per store read of a subscriber's backlog. */
  pageSize: number;
  /** Backlog reads from the store in flight at once (and per turn of the event loop). */
  storeReaders: number;
};

export class CatchUp {
  private readonly store: Store;
  private readonly feed: LiveFeed;
  private readonly pageSize: number;
  // Backlog reads take turns, so that a crowd resuming at once does not hold the event
  // loop away from publishers; only the reads: a slow reader's wait holds no turn.
  private readonly storeRead: <T>(fn: () => Promise<T>) => Promise<T>;

  constructor(private readonly o: CatchUpOptions) {
    this.store = o.store;
    this.feed = o.feed;
    this.pageSize = o.pageSize;
    this.storeRead = limiter(o.storeReaders);
  }

  /**
   * Sends `sub` everything after its cursor, then hands it to the feed. `head`: the
   * store's last seq when it subscribed (its cursor may lie beyond).
   */
  async run(sub: Subscriber, head: number): Promise<void> {
    const known = { head };
    try {
      while (!sub.closed) {
        if (await this.fromRecent(sub, known)) return;
        if (await this.fromStore(sub, known)) return;
      }
    } catch (err) {
      this.o.log.warn({ err, subscriber: sub.id }, 'stream: reading the backlog failed; the subscriber is disconnected and may resume');
      sub.destroy('store_error');
    }
  }

  /** From memory while the feed runs and the cursor is recent enough; true once live. */
  private async fromRecent(sub: Subscriber, known: { head: number }): Promise<boolean> {
    const { feed } = this;
    // With nobody live the feed is not reading: what it holds may be far behind.
    for (let r; feed.live.size > 0 && (r = feed.recent.take(sub.cursor, sub.topic, PIECE_BYTES)) !== undefined; ) {
      // What the feed sent was stored: the store holds at least that much.
      known.head = Math.max(known.head, r.cursor);
      sub.cursor = r.cursor;
      if (r.chunk !== null && !(await sub.sendPaced(r.chunk))) return true;
      if (sub.cursor >= feed.liveSeq && feed.join(sub, known.head)) return true;
    }
    return false;
  }

  /** Reads the store: pages until a short one, then an attempt to join (false: go on). */
  private async fromStore(sub: Subscriber, known: { head: number }): Promise<boolean> {
    const topics = sub.topic === undefined ? undefined : [sub.topic];
    for (;;) {
      if (sub.closed) return true;
      const after = sub.cursor;
      const page = await this.storeRead(() => this.store.listEventsJson({ topics, after, limit: this.pageSize }));
      // A page's `through` is where the store is known to hold events up to, unless the
      // read began beyond the store's end and found nothing (then it only repeats `after`).
      if (after <= known.head || page.events.length > 0) known.head = Math.max(known.head, page.through);
      const encoded = encodePage(page, after, undefined);
      for (let piece = slice(encoded, sub.cursor, undefined, PIECE_BYTES); sub.cursor < encoded.through; piece = slice(encoded, sub.cursor, undefined, PIECE_BYTES)) {
        sub.cursor = piece.through;
        if (piece.chunk !== null && !(await sub.sendPaced(piece.chunk))) return true;
      }
      // Short: everything stored when the read began has been seen (`through` says up to where).
      if (page.events.length < this.pageSize) break;
      // The recent messages may reach back to here now.
      if (this.feed.live.size > 0 && sub.cursor >= this.feed.recent.from) return false;
    }
    return this.feed.join(sub, known.head);
  }
}
