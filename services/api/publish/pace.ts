// Long work on one request, done in slices: between slices the event loop answers others
// (a /health probe, a small publish) instead of waiting for a 16 MB body to be read through.
const SLICE_MS = 5;

/** Resolves on a later turn of the event loop, after the I/O waiting now. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Pace {
  private since = performance.now();

  /** Yields to the event loop once the current slice has run SLICE_MS; else returns at once. */
  async step(): Promise<void> {
    if (performance.now() - this.since < SLICE_MS) return;
    await nextTurn();
    this.since = performance.now();
  }

  /** Runs a scan to its answer, yielding to the event loop every SLICE_MS. */
  async run<T>(scan: Scan<T>): Promise<T> {
    for (;;) {
      const r = scan.next();
      if (r.done === true) return r.value;
      await this.step();
    }
  }
}

/**
 * A whole-text scan written as a generator: it yields every SCAN_STRIDE characters or so
 * (a millisecond or less), and returns its answer. Pace.run runs one with the event loop
 * free between slices; finish runs one at once, for a caller that has no event loop to spare.
 */
export type Scan<T> = Generator<void, T, void>;

export const SCAN_STRIDE = 1 << 16;

export function finish<T>(scan: Scan<T>): T {
  for (;;) {
    const r = scan.next();
    if (r.done === true) return r.value;
  }
}
