// Whether a subscriber's peer still takes bytes, and when its stream has been quiet long
// enough to need a keepalive comment.
import type { Socket } from 'node:net';

export class Liveness {
  private readonly keepaliveMs: number;
  private readonly stallMs: number;
  private lastWriteAt = Date.now();
  /** What the kernel had taken of the socket's bytes at the last sign of progress. */
  private flushed = 0;
  private progressAt = Date.now();

  constructor(keepaliveMs: number, stallMs: number) {
    this.keepaliveMs = keepaliveMs;
    this.stallMs = stallMs;
  }

  wrote(): void {
    this.lastWriteAt = Date.now();
  }

  /** On a keepalive tick: the peer took nothing for stallMs while bytes waited, or the stream wants a keepalive. */
  check(socket: Socket | null, now: number): 'stalled' | 'idle' | undefined {
    if (socket !== null) {
      // bytesWritten counts what is still queued too: the difference is what the kernel took.
      const taken = socket.bytesWritten - socket.writableLength;
      if (socket.writableLength === 0 || taken !== this.flushed) {
        this.flushed = taken;
        this.progressAt = now;
      } else if (now - this.progressAt > this.stallMs) {
        return 'stalled';
      }
    }
    // Ticks come every quarter interval: idle for half of one gets a comment, so no gap
    // between two writes reaches a whole interval.
    return now - this.lastWriteAt >= this.keepaliveMs / 2 ? 'idle' : undefined;
  }
}
