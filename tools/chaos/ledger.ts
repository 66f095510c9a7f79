// What the producers did: every identity sent (with its one content), those answered 202,
// and the counts the books are checked against.
export type Ev = { topic: string; event_id: string; timestamp: string; source: string; payload: Record<string, unknown> };

export const key = (e: { topic: string; event_id: string }) => `${e.topic}\u0000${e.event_id}`;
export const bump = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);

export class Ledger {
  /** Every identity ever sent, with its one content. */
  readonly sent = new Map<string, Ev>();
  /** The same, in order, for picking copies. */
  readonly sentList: Ev[] = [];
  /** Identities in at least one request answered 202. */
  readonly acked = new Set<string>();
  readonly counts = {
    requests: 0,
    attempts: 0,
    by_kind: {} as Record<string, number>,
    answers: {} as Record<string, number>,
    network_errors: 0,
    timeouts: 0,
    events_sent_first_time: 0,
    copies_sent: 0,
    events_in_202: 0, // every event of every 202 request, copies included
    events_maybe_queued: 0, // events of every attempt not refused with a 4xx
    gave_up: 0,
  };
  /** Answers no producer should see, and processes that did not stop cleanly on SIGTERM. */
  readonly anomalies: string[] = [];

  recordFirstSend(e: Ev): void {
    this.sent.set(key(e), e);
    this.sentList.push(e);
    this.counts.events_sent_first_time++;
  }

  recordAccepted(events: readonly Ev[]): void {
    this.counts.events_in_202 += events.length;
    this.counts.events_maybe_queued += events.length;
    for (const e of events) this.acked.add(key(e));
  }
}
