// A job as the worker takes it out of the queue: either events to commit, or a poison
// message with a reason worth logging.
import { expect } from 'chai';
import { anEvent } from '../support/events.js';
import { newJobId } from '../../shared/queue.js';
import { decodeJob } from '../../shared/job.js';

const event = anEvent;

function reasonOf(id: string | undefined, data: unknown): string {
  const decoded = decodeJob(id, data);
  if (decoded.ok) return expect.fail(`expected job ${id} to be refused`);
  expect(decoded.reason).to.be.a('string').and.not.be.empty;
  return decoded.reason;
}

describe('decodeJob', () => {
  it('gives the events of a good job, as validated', () => {
    const events = [event({ event_id: 'a' }), event({ event_id: 'b', extra: 'dropped' })];
    const decoded = decodeJob(newJobId(2), { events });
    expect(decoded.ok).to.equal(true);
    if (!decoded.ok) return;
    expect(decoded.events.map((e) => e.event_id)).to.deep.equal(['a', 'b']);
    expect(decoded.events[1]).to.not.have.property('extra');
    expect(decoded.events[0]).to.deep.equal(event({ event_id: 'a' }));
  });

  it('refuses a job without an id', () => {
    expect(reasonOf(undefined, { events: [event()] })).to.match(/id/);
  });

  it('refuses data without an events array', () => {
    const id = newJobId(1);
    for (const data of [{}, null, undefined, 'events', { events: 'x' }, { events: { 0: event() } }, [event()]]) {
      expect(reasonOf(id, data), JSON.stringify(data)).to.match(/events/);
    }
  });

  it('refuses a job with no events', () => {
    expect(reasonOf(newJobId(0), { events: [] })).to.match(/no events/);
  });

  it('refuses a job whose id counts other than its data holds', () => {
    // /stats counted the id's number as received: committing other numbers would break
    // received == unique_processed + duplicate_dropped.
    const reason = reasonOf(newJobId(3), { events: [event({ event_id: 'a' }), event({ event_id: 'b' })] });
    expect(reason).to.include('3').and.include('2');
    expect(reasonOf(newJobId(1), { events: [event({ event_id: 'a' }), event({ event_id: 'b' })] })).to.include('1');
  });

  it('refuses a job id that carries no count', () => {
    reasonOf('custom-id', { events: [event()] });
    reasonOf('p-x-1234', { events: [event()] });
  });

  it('refuses a job holding an invalid event as poison, saying which and why', () => {
    const reason = reasonOf(newJobId(3), {
      events: [event({ event_id: 'a' }), event({ event_id: 'b', timestamp: '2025-02-29T00:00:00Z' }), event()],
    });
    expect(reason).to.include('index 1').and.include('timestamp');
  });

  it('counts every invalid event of a poison job', () => {
    const reason = reasonOf(newJobId(3), { events: [event({ topic: '' }), 42, event()] });
    expect(reason).to.match(/^2 invalid/);
    expect(reason).to.include('index 0').and.include('topic');
  });
});
