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
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/log.js';
import type { Store } from '../../../shared/store/port.js';
import { unavailable } from '../http/errors.js';
import type { CommitFeed } from '../commits.js';
import { limiter } from './limiter.js';
import { covers, createRecent, encodePage, slice, type Covers, type EncodedPage } from './recent.js';
import { createSubscriber, type Subscriber } from './sse.js';

export type FanoutOptions = {
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

export type Fanout = {
  /**
   * Starts a stream on `res` from `after` (undefined: from the newest event now). Throws
   * before anything is written, so the caller answers errors as JSON: 503 over the limit
   * or while stopping, and whatever the store throws.
   */
  open(res: ServerResponse, q: { topic: string | undefined; after: number | undefined }): Promise<void>;
  size(): number;
  /** Ends every stream and takes no more; resolves once they are closed. */
  close(): Promise<void>;
};

const PIECE_BYTES = 64 * 1024;
const YIELD_AFTER_MS = 50;

export function createFanout(o: FanoutOptions): Fanout {
  const { store, log } = o;
  const pageSize = o.pageSize ?? 500;
  const livePageSize = o.livePageSize ?? 8 * pageSize;
  const subs = new Set<Subscriber>();
  const live = new Set<Subscriber>();
  let reserved = 0;
  let nextId = 0;
  let liveSeq = 0;
  let reading = false;
  let again = false;
  let closing = false;
  let allClosed: (() => void) | undefined;
  // Holds exactly the events (recent.from, liveSeq]: appended as they are dispatched.
  const recent = createRecent(o.recentBytes ?? 2 * o.maxBufferBytes);
  // Backlog reads take turns, so that a crowd resuming at once does not hold the event
  // loop away from publishers; only the reads: a slow reader's wait holds no turn.
  const storeRead = limiter(o.storeReaders ?? 4);

  /** Hands a page read from `liveSeq` to every live subscriber behind it. */
  function dispatch(page: EncodedPage): void {
    const first = page.seqs[0] ?? Infinity;
    // One chunk per topic filter, shared by the subscribers of that filter.
    const byFilter = new Map<string | undefined, Buffer | null>();
    for (const sub of live) {
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

  // The topics the live set follows, one object while they stay the same, so that recent
  // pages read for them can tell they cover the same topics.
  let followedKey = '';
  let followed = new Set<string>();
  function liveTopics(): Covers {
    const topics = new Set<string>();
    for (const sub of live) {
      if (sub.topic === undefined) return undefined;
      topics.add(sub.topic);
    }
    const key = [...topics].sort().join('\u0000');
    if (followedKey !== key) [followedKey, followed] = [key, topics];
    return followed;
  }
  /** The read under way, and whether a subscriber it does not cover joined meanwhile. */
  let inFlight: { covers: Covers; stale: boolean } | undefined;

  /**
   * Reads everything after `liveSeq` for the live set, only of the topics it follows; one
   * read at a time, notices meanwhile coalesced.
   */
  async function pump(): Promise<void> {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    let since = performance.now();
    try {
      do {
        again = false;
        while (live.size > 0 && !closing) {
          const read = (inFlight = { covers: liveTopics(), stale: false });
          const after = liveSeq;
          const page = await store.listEventsJson({ topics: read.covers && [...read.covers], after, limit: livePageSize });
          inFlight = undefined;
          // Someone of a topic it skipped joined at `liveSeq`: read again, for them too.
          if (read.stale) continue;
          if (page.through > liveSeq) {
            const encoded = encodePage(page, after, read.covers);
            dispatch(encoded);
            recent.append(encoded);
            liveSeq = page.through;
          }
          if (page.events.length < livePageSize) break;
          // A big commit is many pages. Sockets flush only when the event loop turns: once
          // one holds a good part of its limit, let them (else a reader that keeps up would
          // look slow); and let publishers in every few tens of milliseconds.
          if (performance.now() - since > YIELD_AFTER_MS || [...live].some((sub) => sub.buffered() > o.maxBufferBytes / 4)) {
            await new Promise((r) => setImmediate(r));
            since = performance.now();
          }
        }
      } while (again && live.size > 0 && !closing);
    } catch (err) {
      inFlight = undefined;
      log.warn({ err }, 'stream: reading new events failed; trying again on the next notice');
    } finally {
      reading = false;
    }
  }

  /** True once the subscriber is live (or gone); false if it must read further first. */
  function join(sub: Subscriber): boolean {
    if (sub.closed || closing) return true;
    // Nobody is live and nothing is being read: the fan-out may start from this cursor.
    if (live.size === 0 && !reading) recent.reset((liveSeq = sub.cursor));
    if (sub.cursor < liveSeq) return false;
    sub.live = true;
    live.add(sub);
    if (inFlight !== undefined && !covers(inFlight.covers, sub.topic)) inFlight.stale = true;
    // Notices that came while it caught up may have been ignored (nobody was live).
    void pump();
    return true;
  }

  /** From memory while the fan-out runs and the cursor is recent enough; true once live. */
  async function catchUpFromRecent(sub: Subscriber): Promise<boolean | undefined> {
    // With nobody live the fan-out is not reading: what it holds may be far behind.
    for (let r; live.size > 0 && (r = recent.take(sub.cursor, sub.topic, PIECE_BYTES)) !== undefined; ) {
      sub.cursor = r.cursor;
      if (r.chunk !== null && !(await sub.sendPaced(r.chunk))) return true;
      if (sub.cursor >= liveSeq && join(sub)) return true;
    }
    return undefined;
  }

  /** Reads the store: pages until a short one, then an attempt to join (false: go on). */
  async function catchUpFromStore(sub: Subscriber): Promise<boolean> {
    const topics = sub.topic === undefined ? undefined : [sub.topic];
    for (;;) {
      if (sub.closed) return true;
      const after = sub.cursor;
      const page = await storeRead(() => store.listEventsJson({ topics, after, limit: pageSize }));
      const encoded = encodePage(page, after, undefined);
      for (let piece = slice(encoded, sub.cursor, undefined, PIECE_BYTES); sub.cursor < encoded.through; piece = slice(encoded, sub.cursor, undefined, PIECE_BYTES)) {
        sub.cursor = piece.through;
        if (piece.chunk !== null && !(await sub.sendPaced(piece.chunk))) return true;
      }
      // Short: everything stored when the read began has been seen (`through` says up to where).
      if (page.events.length < pageSize) break;
      // The recent messages may reach back to here now.
      if (live.size > 0 && sub.cursor >= recent.from) return false;
    }
    return join(sub);
  }

  async function catchUp(sub: Subscriber): Promise<void> {
    try {
      while (!sub.closed) {
        if (await catchUpFromRecent(sub)) return;
        if (await catchUpFromStore(sub)) return;
      }
    } catch (err) {
      log.warn({ err, subscriber: sub.id }, 'stream: reading the backlog failed; the subscriber is disconnected and may resume');
      sub.destroy('store_error');
    }
  }

  o.feed.onNotice((notice) => {
    if (live.size > 0 && notice.seq > liveSeq) void pump();
  });
  o.feed.onReconnect(() => {
    if (live.size > 0) void pump();
  });

  const safety = setInterval(() => {
    if (live.size === 0 || reading) return;
    store.lastSeq().then(
      (seq) => {
        if (seq > liveSeq) void pump();
      },
      (err: unknown) => log.debug({ err }, 'stream: safety read failed'),
    );
  }, o.safetyReadMs ?? 2000);
  safety.unref();
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const sub of subs) sub.tick(now);
  }, o.keepaliveMs / 4);
  ticker.unref();

  return {
    async open(res, q) {
      if (closing) throw unavailable('the API is stopping: reconnect (to another API process)', 1);
      if (subs.size + reserved >= o.maxSubscribers) {
        throw unavailable(`this API process already serves its ${o.maxSubscribers} subscribers (MAX_SUBSCRIBERS)`, 5, 'too_many_subscribers');
      }
      reserved++;
      let start: number;
      try {
        // Read even with a start point: a store out of reach is a 503 before the 200 is sent.
        const last = await store.lastSeq();
        start = q.after ?? last;
      } finally {
        reserved--;
      }
      if (closing) throw unavailable('the API is stopping: reconnect (to another API process)', 1);
      // Gone while the start was read: its 'close' has passed, nobody would drop it later.
      if (res.destroyed || res.socket === null || res.socket.destroyed) return;
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        // nginx and its kin would otherwise hold messages back to fill their buffers.
        'X-Accel-Buffering': 'no',
      });
      const sub = createSubscriber(res, {
        id: ++nextId,
        topic: q.topic,
        cursor: start,
        maxBufferBytes: o.maxBufferBytes,
        keepaliveMs: o.keepaliveMs,
        stallMs: Math.max(4 * o.keepaliveMs, 10_000),
        onClose: (s, reason) => {
          subs.delete(s);
          live.delete(s);
          if (reason === 'too_slow' || reason === 'stalled') {
            log.info({ subscriber: s.id, reason, cursor: s.cursor }, 'stream: subscriber too slow, disconnected');
          } else {
            log.debug({ subscriber: s.id, reason: reason ?? 'client_closed', cursor: s.cursor }, 'stream: subscriber gone');
          }
          if (subs.size === 0) allClosed?.();
        },
      });
      subs.add(sub);
      log.debug({ subscriber: sub.id, topic: q.topic, after: start }, 'stream: subscriber connected');
      // Sends the headers at once and tells the client where its stream starts.
      sub.send(`: after ${start}\n\n`);
      void catchUp(sub);
    },
    size: () => subs.size,
    async close() {
      closing = true;
      clearInterval(safety);
      clearInterval(ticker);
      if (subs.size === 0) return;
      const done = new Promise<void>((resolve) => (allClosed = resolve));
      for (const sub of subs) sub.end(1000);
      await done;
    },
  };
}
