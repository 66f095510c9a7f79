// How a subscriber's response ends: cleanly with a grace period for the peer to take the
// rest, or destroyed; and the first reason given, which the subscriber is dropped with.
import type { ServerResponse } from 'node:http';

export class ResponseEnding {
  private readonly res: ServerResponse;
  private isClosed = false;
  private why: string | undefined;
  private endTimer: NodeJS.Timeout | undefined;

  /** onClose is told once the response is closed, however it ended. */
  constructor(res: ServerResponse, onClose: (reason: string | undefined) => void) {
    this.res = res;
    // Errors on the response end in 'close' as well; that is where the subscriber is dropped.
    res.on('error', () => undefined);
    res.once('close', () => {
      this.isClosed = true;
      if (this.endTimer !== undefined) clearTimeout(this.endTimer);
      onClose(this.why);
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  destroy(why: string): void {
    if (this.isClosed) return;
    this.why ??= why;
    this.res.destroy();
  }

  /** Ends the response cleanly; destroys it if the peer will not take the rest within graceMs. */
  end(graceMs: number): void {
    if (this.isClosed) return;
    this.why ??= 'shutdown';
    this.res.end();
    this.endTimer = setTimeout(() => this.res.destroy(), graceMs);
    this.endTimer.unref();
  }
}
