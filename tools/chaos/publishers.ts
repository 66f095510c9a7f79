// Producers that must not lose events: each request is sent again, as it was, until it is
// answered 202 (or the drain deadline passes); what happened to it goes to the ledger.
import { bump, type Ledger } from './ledger.js';
import { pause, type Random } from './random.js';
import type { RequestMaker, Req } from './requests.js';

function errorCode(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: string }).error;
  } catch {
    return undefined;
  }
}

/** What one answer means for the request: done (202 or refused), or send it again. */
type Verdict = { done: boolean; retryAfter: number };

export class Publishers {
  private loadOn = true;
  private drainDeadline = Infinity;
  private running: Promise<void>[] = [];

  constructor(
    private readonly baseUrl: string,
    private readonly random: Random,
    private readonly ledger: Ledger,
    private readonly requests: RequestMaker,
  ) {}

  /** `count` producers, each sending one request after another with a short pause. */
  start(count: number): void {
    this.running = Array.from({ length: count }, async (_, i) => {
      while (this.loadOn) {
        await this.deliver(this.requests.next(i));
        await pause(this.random.between(5, 30));
      }
    });
  }

  /** Stops the load; requests still being retried get two minutes to be accepted. */
  async close(): Promise<void> {
    this.loadOn = false;
    if (this.drainDeadline === Infinity) this.drainDeadline = Date.now() + 120_000;
    await Promise.all(this.running);
  }

  /** Sends one request until it is accepted, as a producer that must not lose events would. */
  private async deliver(req: Req): Promise<void> {
    const { counts } = this.ledger;
    counts.requests++;
    bump(counts.by_kind, req.kind);
    let backoff = 50;
    for (;;) {
      counts.attempts++;
      let retryAfter = 0;
      try {
        const verdict = await this.attempt(req);
        if (verdict.done) return;
        retryAfter = verdict.retryAfter;
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') counts.timeouts++;
        else counts.network_errors++;
        counts.events_maybe_queued += req.events.length; // the API may have queued it and died
      }
      if (Date.now() > this.drainDeadline) {
        counts.gave_up++;
        return;
      }
      await pause(retryAfter > 0 ? Math.min(1000, retryAfter * 200) + this.random.between(0, 200) : backoff + this.random.between(0, backoff));
      backoff = Math.min(2000, backoff * 2);
    }
  }

  private async attempt(req: Req): Promise<Verdict> {
    const { ledger } = this;
    const res = await fetch(this.baseUrl + req.path, {
      method: 'POST',
      headers: { 'content-type': req.contentType },
      body: req.body,
      signal: AbortSignal.timeout(8000),
    });
    const status = res.status;
    const retryAfter = Number(res.headers.get('retry-after') ?? 0);
    const text = await res.text();
    // A 503 says whether anything may have been queued: `unavailable` (nothing was) or
    // `outcome_unknown` (the add may land late).
    const code = status === 503 ? errorCode(text) : undefined;
    bump(ledger.counts.answers, code === undefined ? String(status) : `${status} ${code}`);
    if (status === 202) {
      const body = JSON.parse(text) as { accepted?: number };
      if (body.accepted !== req.events.length) ledger.anomalies.push(`202 with accepted=${body.accepted} for ${req.events.length} events`);
      ledger.recordAccepted(req.events);
      return { done: true, retryAfter };
    }
    if (status !== 503) {
      ledger.anomalies.push(`${req.kind} request answered ${status}: ${text.slice(0, 200)}`);
      return { done: true, retryAfter };
    }
    if (code !== 'unavailable') ledger.counts.events_maybe_queued += req.events.length; // a timed-out add may still land
    return { done: false, retryAfter };
  }
}
