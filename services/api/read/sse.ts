// One subscriber's side of GET /events/stream: its response, its cursor, and the rules for
// writing to it. Writes never wait in the live fan-out (one slow reader must not hold up
// the others): a subscriber whose unsent bytes pass the limit is cut loose, and resumes
// with Last-Event-ID. Only the subscriber's own backlog catch-up waits for it to drain.
import type { ServerResponse } from 'node:http';
import type { EventJson } from '../../../shared/store/event-json.js';

/** An event as one SSE message: `id:` its seq, `data:` the event as GET /events shows it. */
export function sseMessage(e: EventJson): string {
  // JSON text has its line breaks escaped inside strings, so the data is always one line.
  return `id: ${e.seq}\ndata: ${e.json}\n\n`;
}

const KEEPALIVE = Buffer.from(': keepalive\n\n');

export type Subscriber = {
  readonly id: number;
  readonly topic: string | undefined;
  /**
   * Every event (of its topic) with a seq up to here has been written or was never to
   * be: the next message has a larger seq. Moves forward only, so nothing is sent twice.
   */
  cursor: number;
  live: boolean;
  readonly closed: boolean;
  /** Bytes written but not yet taken by the peer's socket. */
  buffered(): number;
  /** Writes unless the peer is already too far behind, in which case it is cut loose. */
  send(chunk: string | Buffer): boolean;
  /** Writes, then waits until the socket drains (or closes); false once closed. */
  sendPaced(chunk: string | Buffer): Promise<boolean>;
  /** Called on each keepalive tick: a comment if idle, and cut loose if stalled. */
  tick(now: number): void;
  /** Ends the response cleanly; destroys it if the peer will not take the rest. */
  end(graceMs: number): void;
  destroy(reason: string): void;
};

type SubscriberOptions = {
  id: number;
  topic: string | undefined;
  cursor: number;
  maxBufferBytes: number;
  keepaliveMs: number;
  /** A peer that takes no byte for this long while bytes wait for it is gone. */
  stallMs: number;
  onClose: (sub: Subscriber, reason: string | undefined) => void;
};

export function createSubscriber(res: ServerResponse, o: SubscriberOptions): Subscriber {
  let closed = false;
  let reason: string | undefined;
  let lastWriteAt = Date.now();
  let flushed = 0;
  let progressAt = Date.now();
  let endTimer: NodeJS.Timeout | undefined;

  const buffered = () => res.writableLength;
  const destroy = (why: string) => {
    if (closed) return;
    reason ??= why;
    res.destroy();
  };

  // Errors on the response end in 'close' as well; that is where the subscriber is dropped.
  res.on('error', () => undefined);
  res.once('close', () => {
    closed = true;
    if (endTimer !== undefined) clearTimeout(endTimer);
    o.onClose(sub, reason);
  });

  const sub: Subscriber = {
    id: o.id,
    topic: o.topic,
    cursor: o.cursor,
    live: false,
    get closed() {
      return closed;
    },
    buffered,
    send(chunk) {
      // Once ended (shutdown), a write would be an error: the stream is over.
      if (closed || res.writableEnded) return false;
      // Checked before writing: a page larger than the limit still goes to a reader that
      // keeps up; what is cut is a reader that left the previous writes lying there.
      if (buffered() > o.maxBufferBytes) {
        destroy('too_slow');
        return false;
      }
      res.write(chunk);
      lastWriteAt = Date.now();
      return true;
    },
    async sendPaced(chunk) {
      if (!sub.send(chunk)) return false;
      if (res.writableNeedDrain) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
      return !closed && !res.writableEnded;
    },
    tick(now) {
      if (closed) return;
      const socket = res.socket;
      if (socket !== null) {
        // bytesWritten counts what is still queued too: the difference is what the kernel took.
        const taken = socket.bytesWritten - socket.writableLength;
        if (socket.writableLength === 0 || taken !== flushed) {
          flushed = taken;
          progressAt = now;
        } else if (now - progressAt > o.stallMs) {
          destroy('stalled');
          return;
        }
      }
      // Ticks come every quarter interval: idle for half of one gets a comment, so no gap
      // between two writes reaches a whole interval.
      if (now - lastWriteAt >= o.keepaliveMs / 2) sub.send(KEEPALIVE);
    },
    end(graceMs) {
      if (closed) return;
      reason ??= 'shutdown';
      res.end();
      endTimer = setTimeout(() => res.destroy(), graceMs);
      endTimer.unref();
    },
    destroy,
  };
  return sub;
}
