// Polls the API's /stats while a scenario runs: events processed and the lag, every 200 ms,
// until all the scenario's events are stored or dropped.
import { stats, type Stats } from '../tools/harness/http.js';
import { progress } from './progress.js';
import type { Scenario } from './scenarios.js';

export type Sample = { t: number; processed: number; pending: number };

export class Sampler {
  readonly samples: Sample[] = [];
  /** Events the load generator has had accepted so far (it reports them as it goes). */
  accepted = 0;
  private loadDone = false;
  private stopped = false;
  private t0 = 0;
  private baseProcessed = 0;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly s: Scenario,
    private readonly baseUrl: string,
  ) {}

  /** Starts the clock and the polling, counting from the stats `base`. */
  start(base: Stats): void {
    this.baseProcessed = base.unique_processed + base.duplicate_dropped;
    this.t0 = performance.now();
    this.loop = this.poll();
  }

  /** Resolves once the load is done and every one of its events is processed. */
  drained(accepted: number): Promise<void> {
    this.accepted = accepted;
    this.loadDone = true;
    return this.loop ?? Promise.resolve();
  }

  /** Seconds from the start to the last sample (the drained queue). */
  seconds(): number {
    return this.samples.at(-1)!.t;
  }

  /** The lag in the first sample at or after `frac` of the load's `seconds`. */
  lagAt(loadSeconds: number, frac: number): number {
    const t = loadSeconds * frac;
    const sample = this.samples.find((x) => x.t >= t) ?? this.samples.at(-1)!;
    return sample.pending;
  }

  maxLag(): number {
    return Math.max(...this.samples.map((x) => x.pending));
  }

  /** Stops polling early (a failed run); the loop ends at its next turn. */
  async close(): Promise<void> {
    this.stopped = true;
    await this.loop?.catch(() => undefined);
  }

  private async poll(): Promise<void> {
    const { s } = this;
    while (!this.stopped && (!this.loadDone || this.samples.at(-1)?.processed !== s.events)) {
      const st = await stats(this.baseUrl).catch(() => undefined);
      if (st) {
        const processed = st.unique_processed + st.duplicate_dropped - this.baseProcessed;
        this.samples.push({ t: (performance.now() - this.t0) / 1000, processed, pending: st.pending ?? 0 });
        const secs = (performance.now() - this.t0) / 1000;
        const rate = processed / secs;
        const eta = rate > 0 ? Math.max(0, (s.events - processed) / rate) : 0;
        progress(
          `${s.name}: accepted ${this.accepted.toLocaleString()} / ${s.events.toLocaleString()}, stored+dropped ${processed.toLocaleString()}, ${Math.round(rate).toLocaleString()} events/s, lag ${(st.pending ?? 0).toLocaleString()}, ETA ${eta.toFixed(0)} s`,
        );
        if (this.loadDone && processed >= s.events) break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
