// The events of requests gathered for one job, and the limits on how much one job carries.
import type { Event } from '../../../shared/schema.js';
import type { OnPlaced, Placement, Rider } from './job-add.js';

type Waiter = Rider & { resolve: (p: Placement) => void; reject: (err: Error) => void };

/** The requests whose events one job carries, each to be told where its events are, or that the add failed. */
export class Waiters {
  readonly list: Waiter[] = [];

  /** The job is in Redis: every request learns where its events are. */
  placed(job: string): void {
    this.list.forEach((w) => w.resolve({ job, offset: w.offset }));
  }

  /** The add failed: it fails every request in the job. */
  failed(err: Error): void {
    this.list.forEach((w) => w.reject(err));
  }
}

/** The requests gathered for one job: their events in order, and their waiters. */
export class Gathering {
  readonly events: Event[] = [];
  bytes = 0;
  readonly waiters = new Waiters();
}

export type Joining = { resolve: Waiter['resolve']; reject: Waiter['reject']; onPlaced?: OnPlaced };

export class CoalescingBuffer {
  private current: Gathering | undefined;
  private readonly maxEvents: number;
  private readonly maxBytes: number;

  constructor(maxEvents: number, maxBytes: number) {
    this.maxEvents = maxEvents;
    this.maxBytes = maxBytes;
  }

  get gathering(): boolean {
    return this.current !== undefined;
  }

  /** A request as large as a whole job travels alone. */
  goesAlone(events: number, bytes: number): boolean {
    return events >= this.maxEvents || bytes >= this.maxBytes;
  }

  /** What is gathered would pass a limit with this request in it: it goes out first. */
  wouldOverflow(events: number, bytes: number): boolean {
    const g = this.current;
    return g !== undefined && (g.events.length + events > this.maxEvents || g.bytes + bytes > this.maxBytes);
  }

  /** Gathers a request's events; says whether they began a job, and whether the job is full. */
  join(events: readonly Event[], bytes: number, joining: Joining): { opened: boolean; full: boolean } {
    const opened = this.current === undefined;
    const g = (this.current ??= new Gathering());
    const offset = g.events.length;
    for (const e of events) g.events.push(e);
    g.bytes += bytes;
    g.waiters.list.push({ offset, ...joining });
    return { opened, full: g.events.length >= this.maxEvents || g.bytes >= this.maxBytes };
  }

  /** What is gathered, to be sent; the next request begins a new job. */
  take(): Gathering | undefined {
    const g = this.current;
    this.current = undefined;
    return g;
  }
}
