// Enqueueing with coalescing: events of requests that arrive within a millisecond or two
// travel as one BullMQ job, because one job per single-event request caps throughput at
// what Redis does per job. Every request still waits for its own 202 until the job that
// carries its events is in Redis, and a failed add fails every request in it.
//
// The parts: the coalescing buffer (what is gathered for the next job, and the limits),
// the flush pacing (when it goes out), and the job adder (the add itself and what its
// failure answers).
import { CoalescingBuffer } from './coalescing-buffer.js';
import { FlushPacing } from './flush-pacing.js';
import { createJobAdder, type OnPlaced, type Placement } from './job-add.js';
import type { QueuedJobData } from '../../../shared/queue.js';
import type { Event } from '../../../shared/schema.js';
import type { Logger } from '../../../shared/log.js';
import type { Queue } from 'bullmq';

export type { Placement } from './job-add.js';

type EnqueueOptions = {
  /**
   * The producer waits for the results: the job asks its worker to publish them. Called
   * with the placement before the job is added, so a waiter is in place before any result
   * can come back.
   */
  onPlaced?: OnPlaced;
  /** What the events weigh (their body's size), for COALESCE_MAX_BYTES. */
  bytes?: number;
};

export type Enqueuer = {
  /** Resolves with the placement once the events are in Redis; rejects with a 503 HttpError. */
  enqueue(events: Event[], opts?: EnqueueOptions): Promise<Placement>;
  /** Sends what is gathered now and waits for every add in flight. */
  flush(): Promise<void>;
  /** The API is stopping: flushes (no request arrives any more). Safe to call twice. */
  close(): Promise<void>;
};

type EnqueuerOptions = {
  queue: Queue<QueuedJobData>;
  lingerMs: number;
  maxEvents: number;
  /** A gathered job is sent once its events weigh this much; a heavier request goes alone. */
  maxBytes?: number;
  timeoutMs: number;
  log: Logger;
  /** Told of each job add as it is sent: the backlog's count between its samples. */
  onAdd?: () => void;
};

export function createEnqueuer(opts: EnqueuerOptions): Enqueuer {
  const adder = createJobAdder(opts);
  const buffer = new CoalescingBuffer(opts.maxEvents, opts.maxBytes ?? Infinity);
  const pacing = new FlushPacing(opts.lingerMs, send);
  const sending = new Set<Promise<void>>();

  function send(): void {
    const g = buffer.take();
    if (g === undefined) return;
    pacing.sending();
    // Only the waiters are held until the add returns: the events are let go with their job data.
    const { waiters } = g;
    const sent = adder.add(g.events, waiters.list, g.bytes).then(
      (id) => waiters.placed(id),
      (err: Error) => waiters.failed(err),
    );
    sending.add(sent);
    void sent.finally(() => {
      sending.delete(sent);
      pacing.returned(buffer.gathering);
    });
  }

  async function flush(): Promise<void> {
    send();
    await Promise.allSettled([...sending, adder.close()]);
  }

  return {
    enqueue(events, enqueueOptions = {}) {
      const { onPlaced, bytes = 0 } = enqueueOptions;
      if (opts.lingerMs === 0 || buffer.goesAlone(events.length, bytes)) {
        return adder.add(events, [{ offset: 0, onPlaced }], bytes).then((job) => ({ job, offset: 0 }));
      }
      if (buffer.wouldOverflow(events.length, bytes)) send();
      return new Promise<Placement>((resolve, reject) => {
        const { opened, full } = buffer.join(events, bytes, { resolve, reject, onPlaced });
        if (opened) pacing.opened();
        if (full) send();
        else pacing.joined();
      });
    },
    flush,
    async close() {
      await flush();
      await pacing.close();
    },
  };
}
