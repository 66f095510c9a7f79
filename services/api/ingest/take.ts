// The one way an ingest protocol's request becomes queued events: its body read under
// MAX_BODY_BYTES (Content-Encoding decoded, as for POST /publish), decoded and mapped by the
// protocol, each event through the one schema, then the backlog check and the enqueuer that
// POST /publish uses, so the queue, the job ids and therefore /stats count them the same way.
import type { IncomingMessage } from 'node:http';
import { validateEvents, type Event, type ValidationDetail } from '../../../shared/schema.js';
import { HttpError, unavailable } from '../http/errors.js';
import type { Backlog } from '../publish/backlog.js';
import type { Enqueuer } from '../publish/enqueue.js';
import { inflightBytes, readBinaryBody, type InflightBytes } from '../publish/read-body.js';

export type TakeLimits = {
  maxBodyBytes: number;
  maxBatchEvents: number;
  /** The bytes of bodies the process holds at once: one budget with POST /publish's (read-body.ts). */
  maxInflightBytes: number;
  maxBacklogJobs: number;
};

/** Items validated one by one: the events that pass, and what is wrong with the others (by item index). */
export type Sorted = { events: Event[]; rejected: ValidationDetail[]; rejectedCount: number };

/** Validates every item: one invalid item does not stop the others (OTLP's partial success). */
export function sortItems(items: readonly unknown[]): Sorted {
  const all = validateEvents(items, { keepPayloadJson: false });
  if (all.ok) return { events: all.events, rejected: [], rejectedCount: 0 };
  const events: Event[] = [];
  const rejected: ValidationDetail[] = [];
  let rejectedCount = 0;
  items.forEach((item, index) => {
    const one = validateEvents([item], { keepPayloadJson: false });
    if (one.ok) events.push(one.events[0]!);
    else {
      rejectedCount++;
      for (const d of one.details) rejected.push({ ...d, index });
    }
  });
  return { events, rejected, rejectedCount };
}

export class Intake {
  private readonly inflight: InflightBytes;

  constructor(
    private readonly limits: TakeLimits,
    private readonly backlog: Backlog,
    private readonly enqueuer: Enqueuer,
  ) {
    this.inflight = inflightBytes(limits.maxInflightBytes);
  }

  /**
   * Reads the body, lets `decode` turn its bytes into events (it throws an HttpError for a
   * body it refuses), and queues those events; resolves once they are durably in Redis.
   */
  async take<T extends { events: Event[] }>(req: IncomingMessage, decode: (bytes: Buffer) => T): Promise<T> {
    const body = await readBinaryBody(req, this.limits.maxBodyBytes, this.inflight);
    try {
      const decoded = decode(body.bytes);
      const n = decoded.events.length;
      if (n > this.limits.maxBatchEvents) {
        throw new HttpError(413, 'batch_too_large', `the request holds ${n} events; at most ${this.limits.maxBatchEvents} are accepted at once`);
      }
      if (n === 0) return decoded;
      if (this.backlog.full()) {
        throw unavailable(`the backlog is over its limit of ${this.limits.maxBacklogJobs} jobs; retry later`, 5);
      }
      await this.enqueuer.enqueue(decoded.events, { bytes: body.held });
      return decoded;
    } finally {
      this.inflight.give(body.held);
    }
  }
}

