// The fan-out's feed (fanout.ts): commit notices turned into pages for the live set. It
// reads from `liveSeq` (the last seq handed to the live set) on every notice and hands
// each event only to subscribers whose cursor is behind it, and keeps what it sent (Recent)
// for subscribers resuming near the head.
import type { Logger } from '../../../shared/log.js';
import type { Store } from '../../../shared/store/port.js';
import type { CommitFeed } from '../commits.js';
import { covers, createRecent, encodePage, slice, type Covers, type EncodedPage, type Recent } from './recent.js';
import type { Subscriber } from './sse.js';

const YIELD_AFTER_MS = 50;

type LiveFeedOptions = {
  store: Store;
  feed: CommitFeed;
  log: Logger;
  maxBufferBytes: number;
  /** Events per store read (one read usually covers a whole commit). */
  pageSize: number;
  /** A notice can be lost (Redis reconnecting): one lastSeq() per process this often catches up. */
  safetyReadMs: number;
  /** Bytes of messages kept for subscribers resuming near the head. */
  recentBytes: number;
};

export class LiveFeed {
  /** Subscribers fed by the pages read here. */
  readonly live = new Set<Subscriber>();
  /** The last seq handed to the live set; never past what the store holds. */
  private seq = 0;
  /** Holds exactly the events (recent.from, liveSeq]: appended as they are dispatched. */
  readonly recent: Recent;
  private reading = false;
  private again = false;
  private closing = false;
  /** The read under way, and whether a subscriber it does not cover joined meanwhile. */
  private inFlight: { covers: Covers; stale: boolean } | undefined;
  // The topics the live set follows, one object while they stay the same, so that recent
  // pages read for them can tell they cover the same topics.
  private followedKey = '';
  private followed = new Set<string>();
  private readonly safety: NodeJS.Timeout;

  constructor(private readonly o: LiveFeedOptions) {
    this.recent = createRecent(o.recentBytes);
    o.feed.onNotice((notice) => {
      if (this.live.size > 0 && notice.seq > this.seq) void this.pump();
    });
    o.feed.onReconnect(() => {
      if (this.live.size > 0) void this.pump();
    });
    this.safety = setInterval(() => this.safetyRead(), o.safetyReadMs);
    this.safety.unref();
  }

  get liveSeq(): number {
    return this.seq;
  }

  /**
   * True once the subscriber is live (or gone); false if it must read further first.
   * `head`: a seq the store is known to hold events up to (its cursor may be beyond).
   */
  join(sub: Subscriber, head: number): boolean {
    if (sub.closed || this.closing) return true;
    // Nobody is live and nothing is being read: the feed may start from this cursor, but
    // never past the store's last seq, or nobody behind it could join until the store got there.
    if (this.live.size === 0 && !this.reading) this.recent.reset((this.seq = Math.min(sub.cursor, head)));
    if (sub.cursor < this.seq) return false;
    sub.live = true;
    this.live.add(sub);
    if (this.inFlight !== undefined && !covers(this.inFlight.covers, sub.topic)) this.inFlight.stale = true;
    // Notices that came while it caught up may have been ignored (nobody was live).
    void this.pump();
    return true;
  }

  leave(sub: Subscriber): void {
    this.live.delete(sub);
  }

  close(): Promise<void> {
    this.closing = true;
    clearInterval(this.safety);
    return Promise.resolve();
  }

  private safetyRead(): void {
    if (this.live.size === 0 || this.reading) return;
    this.o.store.lastSeq().then(
      (seq) => {
        if (seq > this.seq) void this.pump();
      },
      (err: unknown) => this.o.log.debug({ err }, 'stream: safety read failed'),
    );
  }

  /**
   * Reads everything after `liveSeq` for the live set, only of the topics it follows; one
   * read at a time, notices meanwhile coalesced.
   */
  private async pump(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.again = false;
        await this.readToHead();
      } while (this.again && this.live.size > 0 && !this.closing);
    } catch (err) {
      this.inFlight = undefined;
      this.o.log.warn({ err }, 'stream: reading new events failed; trying again on the next notice');
    } finally {
      this.reading = false;
    }
  }

  private async readToHead(): Promise<void> {
    let since = performance.now();
    while (this.live.size > 0 && !this.closing) {
      const read = (this.inFlight = { covers: this.liveTopics(), stale: false });
      const after = this.seq;
      const page = await this.o.store.listEventsJson({ topics: read.covers && [...read.covers], after, limit: this.o.pageSize });
      this.inFlight = undefined;
      // Someone of a topic it skipped joined at `liveSeq`: read again, for them too.
      if (read.stale) continue;
      if (page.through > this.seq) {
        const encoded = encodePage(page, after, read.covers);
        this.dispatch(encoded);
        this.recent.append(encoded);
        this.seq = page.through;
      }
      if (page.events.length < this.o.pageSize) return;
      // A big commit is many pages. Sockets flush only when the event loop turns: once
      // one holds a good part of its limit, let them (else a reader that keeps up would
      // look slow); and let publishers in every few tens of milliseconds.
      if (performance.now() - since > YIELD_AFTER_MS || [...this.live].some((sub) => sub.buffered() > this.o.maxBufferBytes / 4)) {
        await new Promise((r) => setImmediate(r));
        since = performance.now();
      }
    }
  }

  /** Hands a page read from `liveSeq` to every live subscriber behind it. */
  private dispatch(page: EncodedPage): void {
    const first = page.seqs[0] ?? Infinity;
    // One chunk per topic filter, shared by the subscribers of that filter.
    const byFilter = new Map<string | undefined, Buffer | null>();
    for (const sub of this.live) {
      if (sub.closed || sub.cursor >= page.through) continue;
      let chunk: Buffer | null;
      if (sub.cursor < first) {
        if (!byFilter.has(sub.topic)) byFilter.set(sub.topic, slice(page, 0, sub.topic, Infinity).chunk);
        chunk = byFilter.get(sub.topic) ?? null;
      } else {
        // Joined with a cursor inside this page: only what lies beyond it.
        chunk = slice(page, sub.cursor, sub.topic, Infinity).chunk;
      }
      sub.cursor = page.through;
      if (chunk !== null) sub.send(chunk);
    }
  }

  private liveTopics(): Covers {
    const topics = new Set<string>();
    for (const sub of this.live) {
      if (sub.topic === undefined) return undefined;
      topics.add(sub.topic);
    }
    const key = [...topics].sort().join('\u0000');
    if (this.followedKey !== key) [this.followedKey, this.followed] = [key, topics];
    return this.followed;
  }
}
