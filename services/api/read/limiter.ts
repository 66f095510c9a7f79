// Store reads of the stream's backlog take turns: a crowd resuming at once must not hold the
// event loop away from publishers.

/**
 * At most `n` at once, the rest queue; a slot is handed on only on the event loop's next
 * turn, so that even a synchronous driver (better-sqlite3) lets requests in between.
 */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (running >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await fn();
    } finally {
      setImmediate(() => {
        running--;
        waiting.shift()?.();
      });
    }
  };
}
