// The fan-out's subscriber registry (fanout.ts): every open stream of this process, the
// MAX_SUBSCRIBERS limit (slots reserved while a stream's start is read), the keepalive
// ticks, and the end of every stream when the API stops.
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/log.js';
import { unavailable } from '../http/errors.js';
import { createSubscriber, type Subscriber } from './sse.js';

type RegistryOptions = {
  log: Logger;
  keepaliveMs: number;
  maxBufferBytes: number;
  maxSubscribers: number;
  /** Called when a subscriber is gone, whatever ended it. */
  onGone: (sub: Subscriber) => void;
};

export class SubscriberRegistry {
  private readonly subs = new Set<Subscriber>();
  /** Slots held by streams whose start point is being read. */
  private reserved = 0;
  private nextId = 0;
  private closing = false;
  private allEnded: Promise<void> | undefined;
  private allClosed: (() => void) | undefined;
  private readonly ticker: NodeJS.Timeout;

  constructor(private readonly o: RegistryOptions) {
    this.ticker = setInterval(() => {
      const now = Date.now();
      for (const sub of this.subs) sub.tick(now);
    }, o.keepaliveMs / 4);
    this.ticker.unref();
  }

  get size(): number {
    return this.subs.size;
  }

  /** Holds a slot while `start` runs; throws a 503 over the limit or while stopping. */
  async reserve<T>(start: () => Promise<T>): Promise<T> {
    this.refuseWhileStopping();
    if (this.subs.size + this.reserved >= this.o.maxSubscribers) {
      throw unavailable(`this API process already serves its ${this.o.maxSubscribers} subscribers (MAX_SUBSCRIBERS)`, 5, 'too_many_subscribers');
    }
    this.reserved++;
    try {
      return await start();
    } finally {
      this.reserved--;
    }
  }

  refuseWhileStopping(): void {
    if (this.closing) throw unavailable('the API is stopping: reconnect (to another API process)', 1);
  }

  /** A subscriber writing to `res` from `cursor` on. */
  add(res: ServerResponse, topic: string | undefined, cursor: number): Subscriber {
    const { o } = this;
    const sub = createSubscriber(res, {
      id: ++this.nextId,
      topic,
      cursor,
      maxBufferBytes: o.maxBufferBytes,
      keepaliveMs: o.keepaliveMs,
      stallMs: Math.max(4 * o.keepaliveMs, 10_000),
      onClose: (s, reason) => this.gone(s, reason),
    });
    this.subs.add(sub);
    return sub;
  }

  /** Ends every stream and takes no more; resolves once they are closed. Safe to call twice. */
  close(): Promise<void> {
    this.closing = true;
    clearInterval(this.ticker);
    if (this.subs.size === 0) return Promise.resolve();
    this.allEnded ??= new Promise<void>((resolve) => (this.allClosed = resolve));
    for (const sub of this.subs) sub.end(1000);
    return this.allEnded;
  }

  private gone(s: Subscriber, reason: string | undefined): void {
    this.subs.delete(s);
    this.o.onGone(s);
    if (reason === 'too_slow' || reason === 'stalled') {
      this.o.log.info({ subscriber: s.id, reason, cursor: s.cursor }, 'stream: subscriber too slow, disconnected');
    } else {
      this.o.log.debug({ subscriber: s.id, reason: reason ?? 'client_closed', cursor: s.cursor }, 'stream: subscriber gone');
    }
    if (this.subs.size === 0) this.allClosed?.();
  }
}
