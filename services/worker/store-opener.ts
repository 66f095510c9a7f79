// The worker's store, opened when it can be. A store that cannot be opened (a read-only or
// full data directory, a database away) is an operator's problem to fix, not a reason to
// exit: the worker says so in its heartbeat (and so in the API's /ready and /stats), takes
// no job, and tries again until it can open it. Closing stops trying and closes what opened.
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/open.js';
import type { Store } from '../../shared/store/port.js';

export class StoreOpener {
  private closed = false;
  private opening: Promise<Store | undefined> | undefined;
  private wake: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  /** Resolves with the store once open, or undefined when closed first. `onFailure` is told of each failed attempt. */
  open(onFailure: (err: unknown, attempt: number) => Promise<void>): Promise<Store | undefined> {
    this.opening ??= this.tryUntilOpen(onFailure);
    return this.opening;
  }

  private async tryUntilOpen(onFailure: (err: unknown, attempt: number) => Promise<void>): Promise<Store | undefined> {
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        return await openStore(this.config, 'worker', this.log, () => this.closed);
      } catch (err) {
        if (this.closed) return undefined;
        await onFailure(err, attempt).catch(() => undefined);
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, Math.min(3000, 200 * attempt));
        });
      }
    }
    return undefined;
  }

  /** Stops trying (a filter build under way gives up) and closes the store if it opened. */
  close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    this.closing ??= (async () => {
      const store = await this.opening;
      await store?.close();
    })();
    return this.closing;
  }
}
