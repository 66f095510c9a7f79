// One subscriber's side of GET /events/stream: its response, its cursor, and the rules for
// writing to it. Writes never wait in the live fan-out (one slow reader must not hold up
// the others): a subscriber whose unsent bytes pass the limit is cut loose, and resumes
// with Last-Event-ID. Only the subscriber's own backlog catch-up waits for it to drain.
import { ResponseEnding } from './sse-ending.js';
import { Liveness } from './sse-liveness.js';
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

/** Resolves once the response drains or closes. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * The subscriber's parts: how its response ends (sse-ending.ts), whether its peer still
 * takes bytes (sse-liveness.ts), and here the writes and the limit on unsent bytes.
 */
export function createSubscriber(res: ServerResponse, o: SubscriberOptions): Subscriber {
  const ending = new ResponseEnding(res, (reason) => o.onClose(sub, reason));
  const liveness = new Liveness(o.keepaliveMs, o.stallMs);
  const buffered = () => res.writableLength;
  const destroy = (why: string) => ending.destroy(why);

  const sub: Subscriber = {
    id: o.id,
    topic: o.topic,
    cursor: o.cursor,
    live: false,
    get closed() {
      return ending.closed;
    },
    buffered,
    send(chunk) {
      // Once ended (shutdown), a write would be an error: the stream is over.
      if (ending.closed || res.writableEnded) return false;
      // Checked before writing: a page larger than the limit still goes to a reader that
      // keeps up; what is cut is a reader that left the previous writes lying there.
      if (buffered() > o.maxBufferBytes) {
        destroy('too_slow');
        return false;
      }
      res.write(chunk);
      liveness.wrote();
      return true;
    },
    async sendPaced(chunk) {
      if (!sub.send(chunk)) return false;
      if (res.writableNeedDrain) await drained(res);
      return !ending.closed && !res.writableEnded;
    },
    tick(now) {
      if (ending.closed) return;
      const state = liveness.check(res.socket, now);
      if (state === 'stalled') destroy('stalled');
      else if (state === 'idle') sub.send(KEEPALIVE);
    },
    end(graceMs) {
      ending.end(graceMs);
    },
    destroy,
  };
  return sub;
}
