// A heavy request's job, built in slices as UTF-8 bytes, must be exactly the JSON BullMQ would
// have written for the same job data: a worker reads it as any other job.
import { expect } from 'chai';
import { decodeJob, jobDataOf } from '../../shared/job.js';
import type { Event } from '../../shared/schema.js';
import { jobBytesScan } from '../../services/api/publish/job-bytes.js';
import { finish } from '../../services/api/publish/pace.js';

const awkward: Event[] = [
  { topic: 't', event_id: 'plain', timestamp: '2025-10-24T00:00:00Z', source: 's', payload: {} },
  { topic: 'ünï', event_id: 'quote"back\\slash', timestamp: '2025-10-24T00:00:00.123+02:00', source: 'tab\there', payload: { nested: { a: [1, 2.5, null, true] }, s: 'line\nbreak "q" \u2028 \u0001 😀' } },
  { topic: 't', event_id: 'lone', timestamp: '2025-10-24T00:00:00Z', source: 's', payload: { lone: '\ud800x' } },
];

describe('job bytes built in slices', () => {
  for (const reply of [false, true]) {
    it(`is JSON.stringify's text of the job data, byte for byte (reply ${reply})`, () => {
      expect(finish(jobBytesScan(awkward, reply)).equals(Buffer.from(JSON.stringify(jobDataOf(awkward, reply))))).to.equal(true);
    });
  }

  it('yields between slices of a large job, and still writes the same text', () => {
    const big = Array.from({ length: 2000 }, (_, i): Event => ({
      topic: `t${i % 7}`,
      event_id: `id-${i}`,
      timestamp: '2025-10-24T00:00:00Z',
      source: 's',
      payload: { i, text: 'x"'.repeat(200) },
    }));
    const scan = jobBytesScan(big, false);
    let slices = 0;
    let r = scan.next();
    while (r.done !== true) {
      slices++;
      r = scan.next();
    }
    expect(slices).to.be.greaterThan(5);
    expect(r.value.toString()).to.equal(JSON.stringify(jobDataOf(big, false)));
    const decoded = decodeJob(`p-${big.length}-x`, JSON.parse(r.value.toString()));
    expect(decoded.ok && decoded.events.map((e) => e.event_id)).to.deep.equal(big.map((e) => e.event_id));
  });
});
