// /stats read again and again while two workers drain the queue: `received` never goes
// back, and never falls below the events already acknowledged with 202. A job moves from
// Redis to the store while /stats reads both; read apart, a job committed in between would
// be counted in neither place.
import { expect } from 'chai';
import { drained, publish, stats } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { useCluster } from '../support/suite.js';

const REQUESTS = 300;
const PER_REQUEST = 10;
const READERS = 4;

describe('/stats while the queue drains', function () {
  this.timeout(120_000);
  const shared = useCluster({ workers: 2, env: { LOG_LEVEL: 'warn' } });

  it('never shows received going back, nor below what was acknowledged', async () => {
    const base = shared.cluster.baseUrl;
    let acknowledged = 0;
    let publishing = true;
    // The highest `received` any finished read has shown: a read that starts later must show
    // at least as much.
    let seen = 0;
    const problems: string[] = [];
    let reads = 0;

    async function reader(): Promise<void> {
      let last = 0;
      for (;;) {
        const floor = Math.max(acknowledged, seen);
        const s = await stats(base);
        reads++;
        if (s.received < floor) problems.push(`received ${s.received} < ${floor} known before the read began`);
        if (s.received < last) problems.push(`received went back from ${last} to ${s.received}`);
        last = s.received;
        seen = Math.max(seen, s.received);
        if (!publishing && s.pending === 0) return;
      }
    }

    async function publisher(): Promise<void> {
      for (let i = 0; i < REQUESTS; i++) {
        // A copy of an earlier event now and then: copies count in received too.
        const events = Array.from({ length: PER_REQUEST }, () => event({ topic: 'stats-reads' }));
        const r = await publish(base, events);
        expect(r.status, JSON.stringify(r.body)).to.equal(202);
        acknowledged += events.length;
      }
      publishing = false;
    }

    await Promise.all([publisher(), publisher(), ...Array.from({ length: READERS }, () => reader())]);
    console.log(`      ${reads} reads of /stats during ${2 * REQUESTS} publishes and their drain`);
    expect(problems.slice(0, 10)).to.deep.equal([]);
    const final = await drained(base, acknowledged);
    expect(final.received).to.equal(final.unique_processed + final.duplicate_dropped);
  });
});
