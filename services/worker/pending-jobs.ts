// The jobs a committer holds until their commit, in the order they came, and how they are
// cut into groups: each group one store transaction.
import type { JobOutcome } from '../../shared/store/port.js';
import type { Submitted } from './committer.js';

export type Pending = {
  job: Submitted;
  resolve: (outcome: JobOutcome) => void;
  reject: (err: Error) => void;
};

export class PendingJobs {
  private queue: Pending[] = [];
  /** Events of the jobs held. */
  private held = 0;

  get jobs(): number {
    return this.queue.length;
  }

  get events(): number {
    return this.held;
  }

  push(p: Pending): void {
    this.queue.push(p);
    this.held += p.job.events.length;
  }

  /** The next group: up to maxJobs jobs and maxEvents events, at least one job. */
  takeGroup(maxJobs: number, maxEvents: number): Pending[] {
    let events = 0;
    let n = 0;
    while (n < this.queue.length && n < maxJobs) {
      const size = this.queue[n]!.job.events.length;
      if (n > 0 && events + size > maxEvents) break;
      events += size;
      n++;
    }
    const group = this.queue.slice(0, n);
    this.queue = this.queue.slice(n);
    this.held -= events;
    return group;
  }

  /** A group whose commit failed goes back in front, in order, to be tried again. */
  putBack(group: Pending[]): void {
    this.queue = group.concat(this.queue);
    this.held += eventsOf(group);
  }

  rejectAll(err: Error): void {
    for (const p of this.queue) p.reject(err);
    this.queue = [];
    this.held = 0;
  }
}

export function eventsOf(group: readonly Pending[]): number {
  let events = 0;
  for (const p of group) events += p.job.events.length;
  return events;
}
