// The retention bench's producer: batches of new events and copies of recent ones, at a
// steady rate, for as long as the run lasts.
import { Connection, prepareRequest } from './http-client.js';
import { stream } from './workload.js';

export type PacedLoadOptions = { rate: number; batch: number; lanes: number; dupRatio: number };

/**
 * The paced producer: batch i is due at i x batch / rate seconds after the start; `lanes`
 * keep-alive connections take the batches in turn, so a slow answer delays no other lane.
 * A 503 (backlog over its limit) is retried after its Retry-After, as producers do.
 */
export class PacedLoad {
  sent = 0;
  retries = 0;
  private stopping = false;
  private next = 0;
  private readonly events;
  private readonly url: URL;
  private running: Promise<void>[] = [];
  private started = 0;

  constructor(
    baseUrl: string,
    private readonly o: PacedLoadOptions,
  ) {
    this.url = new URL('/publish', baseUrl);
    this.events = stream({ ids: 'random', topics: 10, dupRatio: o.dupRatio, seed: 24, prefix: 'ret' });
  }

  start(): void {
    this.started = performance.now();
    this.running = Array.from({ length: this.o.lanes }, () => this.lane());
  }

  private async lane(): Promise<void> {
    const connection = new Connection(Number(this.url.port), this.url.hostname);
    try {
      while (!this.stopping) {
        const i = this.next++;
        const due = this.started + (i * this.o.batch * 1000) / this.o.rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (this.stopping) return;
        const body = JSON.stringify({ events: Array.from({ length: this.o.batch }, () => this.events.next()) });
        const req = prepareRequest(this.url.host, this.url.pathname, 'application/json', body);
        for (;;) {
          const res = await connection.request(req).catch(() => undefined);
          if (res?.status === 202) break;
          if (res !== undefined && res.status !== 503) throw new Error(`publish answered ${res.status}`);
          this.retries++;
          await new Promise((r) => setTimeout(r, Math.min(1000, (res?.retryAfter ?? 0.05) * 1000)));
        }
        this.sent += this.o.batch;
      }
    } finally {
      connection.close();
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }
}
