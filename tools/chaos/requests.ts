// The producers' requests: fresh events and copies (of earlier events, or within the
// request), in every shape /publish takes.
import type { Ledger, Ev } from './ledger.js';
import type { Random } from './random.js';

export type Req = { kind: string; path: string; contentType: string; body: string; events: Ev[] };

const TOPICS = ['orders', 'payments', 'clicks', 'logs', 'audit'];

export class RequestMaker {
  private nextId = 0;

  constructor(
    private readonly seed: number,
    private readonly random: Random,
    private readonly ledger: Ledger,
  ) {}

  next(publisher: number): Req {
    const { random } = this;
    const kind = random.pick(['single', 'single', 'events', 'events', 'array', 'ndjson', 'ndjson', 'batch-path']);
    const events = this.batch(publisher, kind === 'single' ? 1 : random.between(2, kind === 'ndjson' ? 60 : 40));
    const json = 'application/json';
    switch (kind) {
      case 'single':
        return { kind, path: '/publish', contentType: json, body: JSON.stringify(events[0]), events };
      case 'events':
        return { kind, path: '/publish', contentType: json, body: JSON.stringify({ events }), events };
      case 'array':
        return { kind, path: '/publish', contentType: json, body: JSON.stringify(events), events };
      case 'ndjson':
        return { kind, path: '/publish', contentType: 'application/x-ndjson', body: events.map((e) => JSON.stringify(e)).join('\n') + '\n', events };
      default:
        return { kind, path: '/publish/batch', contentType: json, body: JSON.stringify({ events }), events };
    }
  }

  private fresh(publisher: number): Ev {
    const { random } = this;
    const n = this.nextId++;
    const topic = random.pick(TOPICS);
    const e: Ev = {
      topic,
      event_id: `c${this.seed}-${n}`,
      timestamp: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(),
      source: `publisher-${publisher}`,
      payload: { n, topic, note: random.next() < 0.1 ? 'x'.repeat(random.between(100, 4000)) : 'ok', nested: { list: [n, n + 1] } },
    };
    this.ledger.recordFirstSend(e);
    return e;
  }

  private batch(publisher: number, size: number): Ev[] {
    const { random, ledger } = this;
    const batch: Ev[] = [];
    for (let i = 0; i < size; i++) {
      const r = random.next();
      if (r < 0.12 && ledger.sentList.length > 0) {
        batch.push(random.pick(ledger.sentList)); // a copy of something sent before, by anyone
        ledger.counts.copies_sent++;
      } else if (r < 0.16 && batch.length > 0) {
        batch.push(random.pick(batch)); // a copy within the same request
        ledger.counts.copies_sent++;
      } else {
        batch.push(this.fresh(publisher));
      }
    }
    return batch;
  }
}
