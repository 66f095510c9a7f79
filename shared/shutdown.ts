// One way to stop a process: run the steps once, in order, each guarded, under a deadline.
import type { Logger } from './log.js';

export type ShutdownStep = { name: string; run: () => unknown };

/**
 * Returns an idempotent stop function: a second signal while stopping gets the same promise.
 * Resolves with true when every step finished in time, false otherwise.
 */
export function createShutdown(log: Logger, steps: ShutdownStep[], deadlineMs: number): () => Promise<boolean> {
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
