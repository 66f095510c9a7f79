// The books a fault test checks at the end: producers that retry what is not accepted,
// every identity stored once, every `?wait` verdict naming the stored copy.
import { expect } from 'chai';
import { allEvents, drained, request, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import type { Ev } from './workload.js';

export type Verdict = { index: number; status: string; seq: number };
export type Answered = { events: Ev[]; results: Verdict[] };

export const key = (e: { topic: string; event_id: string }) => `${e.topic}\u0000${e.event_id}`;

/** Producers sending `chunks` a few at a time, every third with `?wait`, retrying what is not accepted. */
export async function produce(baseUrl: string, chunks: Ev[][], parallel = 4): Promise<{ accepted: number; answered: Answered[] }> {
  let accepted = 0;
  const answered: Answered[] = [];
  let next = 0;
  async function producer(): Promise<void> {
    while (next < chunks.length) {
      const i = next++;
      const events = chunks[i]!;
      const path = i % 3 === 0 ? '/publish?wait=15' : '/publish';
      for (let attempt = 0; ; attempt++) {
        const r = await request(baseUrl, 'POST', path, events).catch(() => undefined);
        if (r !== undefined && (r.status === 200 || r.status === 202)) {
          accepted += events.length;
          if (r.status === 200) answered.push({ events, results: r.body.results });
          break;
        }
        if (attempt > 200) throw new Error(`publish kept failing: ${r?.status} ${JSON.stringify(r?.body)}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  }
  await Promise.all(Array.from({ length: parallel }, producer));
  return { accepted, answered };
}

/** Every identity stored once, every event published stored, every verdict naming the stored copy. */
export async function checkBooks(baseUrl: string, published: Ev[], answered: Answered[], accepted: number, opts: { lostAnswers?: boolean } = {}): Promise<void> {
  // A request whose answer was lost (the API's Redis cut mid-enqueue) may have been queued:
  // then received counts it, as the contract says, beyond what producers saw accepted.
  const s = opts.lostAnswers
    ? await waitFor(
        async () => {
          const x = await stats(baseUrl);
          return x.pending === 0 && x.received >= accepted && x.unique_processed + x.duplicate_dropped === x.received && x;
        },
        { what: 'the queue drained', timeoutMs: 60_000 },
      )
    : await drained(baseUrl, accepted, 60_000);
  const stored = await allEvents(baseUrl);
  const seqOf = new Map<string, number>();
  for (const e of stored) {
    expect(seqOf.has(key(e)), `${key(e)} stored twice`).to.equal(false);
    seqOf.set(key(e), e.seq);
  }
  const identities = new Set(published.map(key));
  expect(seqOf.size).to.equal(identities.size);
  for (const k of identities) expect(seqOf.has(k), `${k} never stored`).to.equal(true);
  expect(s.unique_processed).to.equal(identities.size);
  expect(s.duplicate_dropped).to.equal(s.received - identities.size);
  const storedVerdicts = new Map<string, number>();
  let verdicts = 0;
  for (const a of answered) {
    expect(a.results).to.have.length(a.events.length);
    a.results.forEach((r, i) => {
      const k = key(a.events[i]!);
      verdicts++;
      expect(r.index).to.equal(i);
      expect(r.seq, `verdict seq of ${k}`).to.equal(seqOf.get(k));
      expect(r.status).to.be.oneOf(['stored', 'duplicate']);
      if (r.status === 'stored') storedVerdicts.set(k, (storedVerdicts.get(k) ?? 0) + 1);
    });
  }
  for (const [k, n] of storedVerdicts) expect(n, `${k} told 'stored' ${n} times`).to.equal(1);
  expect(verdicts).to.be.greaterThan(0);
}

