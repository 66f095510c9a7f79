// One way to stop a process: run the steps once, in order, each guarded, under a deadline.
import type { Logger } from './log.js';

type ShutdownStep = { name: string; run: () => unknown };

/**
 * Returns an idempotent stop function: a second signal while stopping gets the same promise.
 * Resolves with true when every step finished in time, false otherwise.
 */
function createShutdown(log: Logger, steps: ShutdownStep[], deadlineMs: number): () => Promise<boolean> {
  let stopping: Promise<boolean> | undefined;
  return () => {
    stopping ??= (async () => {
      let clean = true;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
        timer.unref();
      });
      for (const step of steps) {
        try {
          const result = await Promise.race([Promise.resolve().then(step.run), deadline]);
          if (result === 'deadline') {
            log.error({ step: step.name, deadlineMs }, 'shutdown deadline reached');
            return false;
          }
        } catch (err) {
          clean = false;
          log.error({ err, step: step.name }, 'shutdown step failed');
        }
      }
      clearTimeout(timer);
      return clean;
    })();
    return stopping;
  };
}

/** A long-lived part of a process: whatever it holds, `close()` lets go of it, once. */
type Closeable = { close(): unknown };

/**
 * The parts of a process in the order they were built; `stop()` closes them in the
 * reverse order (what was built last depends on what was built before it), once, under
 * the deadline. A part is added with one line where it is built:
 * `const queue = parts.add('queue', createQueue(...))`.
 */
export class Parts {
  private readonly steps: ShutdownStep[] = [];
  private stopping: Promise<boolean> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly deadlineMs = 10_000,
  ) {}

  add<T extends Closeable>(name: string, part: T): T {
    const step = { name, run: () => part.close() };
    this.steps.unshift(step);
    // Built while the process stops: nobody will close it later, so it is closed at once.
    if (this.stopping !== undefined) {
      void Promise.resolve()
        .then(step.run)
        .catch((err: unknown) => this.log.error({ err, step: name }, 'shutdown step failed'));
    }
    return part;
  }

  /** Idempotent: a second call gets the first one's promise. True when every part closed in time. */
  stop(): Promise<boolean> {
    this.stopping ??= createShutdown(this.log, [...this.steps], this.deadlineMs)();
    return this.stopping;
  }
}
