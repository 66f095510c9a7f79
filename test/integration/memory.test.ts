// A burst of large publishes keeps the API within its memory bound: bodies are counted as
// they arrive (MAX_INFLIGHT_BYTES), no gathered job grows past COALESCE_MAX_BYTES, and the
// API keeps no copy of a payload's JSON it will never store. Unbounded, 400 concurrent
// 255 KB publishes gathered into one 100 MB job and took the API past 600 MB.
import fs from 'node:fs';
import { expect } from 'chai';
import { allEvents, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { useCluster } from '../support/suite.js';

const CONCURRENT = 400;
const ROUNDS = 2;
const PAYLOAD_BYTES = 255_000;
/**
 * The bound docs/operations.md states for this burst, over the API's RSS before it. The peak
 * follows when V8 collects: the same code measured 310 to 524 MB of growth here, 524 on a
 * quiet machine, so this bound catches gross growth only. That no gathered job grows past
 * COALESCE_MAX_BYTES, the cause of the growth this test was written for (one 100 MB job, the
 * API past 600 MB), is held exactly by test/integration/enqueue.test.ts.
 */
const MAX_GROWTH_BYTES = 768 * 2 ** 20;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

describe('memory under a burst of large publishes', function () {
  this.timeout(180_000);
  // Defaults but one: the test client stalls while it builds 400 bodies, and must not meet
  // the keep-alive close race that a stalled client meets with any server.
  const shared = useCluster({ workers: 1, env: { LOG_LEVEL: 'warn', KEEP_ALIVE_TIMEOUT_MS: '60000' } });

  it(`stays within ${MAX_GROWTH_BYTES / 2 ** 20} MB of growth for ${ROUNDS} x ${CONCURRENT} concurrent ${PAYLOAD_BYTES / 1000} KB publishes`, async () => {
    const pid = shared.cluster.api.child.pid!;
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 10);
    const answers: Record<string, number> = {};
    const accepted: string[] = [];
    const refused: string[] = [];
    let serial = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const bodies = Array.from({ length: CONCURRENT }, () => {
          const id = `big-${++serial}`;
          return { id, body: JSON.stringify({ topic: 'burst', event_id: id, timestamp: '2025-10-24T00:00:00Z', source: 's', payload: { blob: 'x'.repeat(PAYLOAD_BYTES) } }) };
        });
        await Promise.all(
          bodies.map(async ({ id, body }) => {
            const res = await fetch(`${shared.cluster.baseUrl}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
            const answer = (await res.json()) as { error?: string };
            const key = `${res.status} ${answer.error ?? ''}`.trim();
            answers[key] = (answers[key] ?? 0) + 1;
            if (res.status === 202) accepted.push(id);
            if (answer.error === 'unavailable') refused.push(id);
          }),
        );
      }
    } finally {
      clearInterval(sampler);
    }
    const growth = peak - before;
    console.log(`      answers ${JSON.stringify(answers)}; API RSS ${(before / 2 ** 20).toFixed(0)} MB before, peak ${(peak / 2 ** 20).toFixed(0)} MB`);
    expect(growth).to.be.below(MAX_GROWTH_BYTES);
    // Shedding is allowed (503 with Retry-After); a 503 `unavailable` queued nothing.
    expect(Object.keys(answers).every((k) => ['202', '503 unavailable', '503 outcome_unknown'].includes(k)), JSON.stringify(answers)).to.equal(true);
    await waitFor(async () => (await stats(shared.cluster.baseUrl)).pending === 0, { timeoutMs: 120_000, what: 'the burst to be stored' });
    const stored = new Set((await allEvents(shared.cluster.baseUrl, 'burst')).map((e) => e.event_id as string));
    expect(accepted.filter((id) => !stored.has(id))).to.deep.equal([]);
    expect(refused.filter((id) => stored.has(id))).to.deep.equal([]);
  });
});
