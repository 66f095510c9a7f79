// The books, checked from the outside once the load has stopped: the queue drained, every
// stored event walked through GET /events, the store read directly once every process has
// stopped, and each guarantee a named check.
import { loadConfig } from '../../shared/config.js';
import { openStore } from '../../shared/store/open.js';
import type { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';
import type { Faults } from './faults.js';
import { key, type Ev, type Ledger } from './ledger.js';

export type Check = [name: string, pass: boolean, detail: string];

/** What GET /events holds: how often each identity is stored, and content that differs from what was sent. */
export type Walk = { storedKeys: Map<string, number>; storedCount: number; contentMismatch: number };

/** /stats once nothing is pending, waiting, active or delayed. */
export function drained(baseUrl: string): Promise<any> {
  return waitFor(
    async () => {
      const r = await fetch(`${baseUrl}/stats`);
      if (r.status !== 200) return false;
      const s = (await r.json()) as any;
      const q = s.queue ?? {};
      return s.pending === 0 && q.waiting === 0 && q.active === 0 && q.delayed === 0 && s;
    },
    { timeoutMs: 180_000, intervalMs: 250, what: 'the queue to drain' },
  );
}

/** Walks every stored event, from the outside. */
export async function walkEvents(baseUrl: string, ledger: Ledger): Promise<Walk> {
  const storedKeys = new Map<string, number>();
  let storedCount = 0;
  let contentMismatch = 0;
  let after = 0;
  for (;;) {
    const r = await fetch(`${baseUrl}/events?limit=1000&after=${after}`);
    if (r.status !== 200) throw new Error(`/events answered ${r.status}`);
    const page = (await r.json()) as { events: (Ev & { seq: number })[]; next_after: number | null };
    for (const e of page.events) {
      storedCount++;
      const k = key(e);
      storedKeys.set(k, (storedKeys.get(k) ?? 0) + 1);
      const original = ledger.sent.get(k);
      if (original !== undefined && JSON.stringify(original.payload) !== JSON.stringify(e.payload)) contentMismatch++;
    }
    if (page.next_after === null) break;
    after = page.next_after;
  }
  return { storedKeys, storedCount, contentMismatch };
}

/** Stops every process (SIGTERM), then reads the store directly, as the API reads it. */
export async function stopAndReadStore(cluster: Cluster, faults: Faults): Promise<{ unclean: number; problems: string[]; uniqueProcessed: number }> {
  faults.expectAllToStop();
  const exits = await cluster.stop();
  const unclean = exits.filter((e) => e.code !== 0).length;
  const store = await openStore(loadConfig(cluster.env), 'api');
  const problems = await store.integrityCheck();
  const direct = await store.counts({ jobIds: [], topicsLimit: 0 });
  await store.close();
  return { unclean, problems, uniqueProcessed: direct.uniqueProcessed };
}

/** Every guarantee, checked against what the producers did. */
export function checks(ledger: Ledger, walk: Walk, final: any, faults: Faults, stopped: Awaited<ReturnType<typeof stopAndReadStore>>): Check[] {
  const { acked, sent, counts, anomalies } = ledger;
  const { storedKeys, storedCount, contentMismatch } = walk;
  const { unclean, problems } = stopped;
  const doubled = [...storedKeys].filter(([, n]) => n > 1).map(([k]) => k);
  const missing = [...acked].filter((k) => !storedKeys.has(k));
  const phantom = [...storedKeys.keys()].filter((k) => !sent.has(k));
  const termAnomalies = anomalies.filter((a) => a.includes('SIGTERM'));
  return [
    ['every event answered 202 is stored', missing.length === 0, `${missing.length} missing of ${acked.size}${missing.length ? `, e.g. ${missing.slice(0, 3).join(', ')}` : ''}`],
    ['nothing is stored twice', doubled.length === 0, `${doubled.length} identities stored more than once`],
    ['nothing is stored that was never sent', phantom.length === 0, `${phantom.length} unknown identities`],
    ['stored content is what was sent', contentMismatch === 0, `${contentMismatch} mismatches`],
    ['received == unique_processed + duplicate_dropped', final.received === final.unique_processed + final.duplicate_dropped, `${final.received} == ${final.unique_processed} + ${final.duplicate_dropped}`],
    ['unique_processed == events walked in GET /events', final.unique_processed === storedCount, `${final.unique_processed} vs ${storedCount}`],
    ['received covers every 202 and no more than was sent', final.received >= counts.events_in_202 && final.received <= counts.events_maybe_queued, `${counts.events_in_202} <= ${final.received} <= ${counts.events_maybe_queued}`],
    ['no job in the failed set', (final.queue?.failed ?? 0) === 0, `${final.queue?.failed} failed jobs`],
    ['/ready answered 200 again within a minute of every outage', faults.neverReady.length === 0, faults.neverReady.join(', ') || 'every time'],
    ['no process died on its own', faults.unexpectedExits.length === 0, faults.unexpectedExits.join('\n')],
    ['SIGTERM stops every process cleanly', unclean === 0 && termAnomalies.length === 0, `${unclean} unclean at the end, ${termAnomalies.length} during the run${termAnomalies.length ? `:\n${termAnomalies.slice(0, 3).join('\n')}` : ''}`],
    ['every answer was 202 or 503', anomalies.every((a) => a.includes('SIGTERM')), anomalies.filter((a) => !a.includes('SIGTERM')).slice(0, 5).join('\n')],
    ['the store passes its integrity check and agrees with the API', problems.length === 0 && stopped.uniqueProcessed === storedCount, `${problems.length === 0 ? 'ok' : problems.slice(0, 3).join('; ')}, ${stopped.uniqueProcessed} stored`],
  ];
}
