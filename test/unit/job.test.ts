// A job as the worker takes it out of the queue: either events to commit, or a poison
// message with a reason worth logging. Jobs in the form written before version 2 (whole
// events) are still read: the first block.
import { expect } from 'chai';
import { anEvent } from '../support/events.js';
import { newJobId } from '../../shared/queue.js';
import { decodeJob, inspectJob, jobDataOf } from '../../shared/job.js';
import { MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, fieldsOf, payloadJson, type Event } from '../../shared/schema.js';

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

describe('a job as the API writes it (its events as fields, payloads as text)', () => {
  const events = [event({ event_id: 'a', payload: { n: 1, nested: { list: [1, 'é'] } } }), event({ event_id: 'b' })] as Event[];

  it('gives back the events it was made of, payload text and all', () => {
    const decoded = decodeJob(newJobId(2), JSON.parse(JSON.stringify(jobDataOf(events, false))));
    if (!decoded.ok) return expect.fail(decoded.reason);
    expect(decoded.events.map((e) => payloadJson(e.payload))).to.deep.equal(events.map((e) => JSON.stringify(e.payload)));
    expect(JSON.parse(JSON.stringify(decoded.events))).to.deep.equal(events);
  });

  it('asks for a reply only when one is waited for', () => {
    expect(jobDataOf(events, true).reply).to.equal(true);
    expect(jobDataOf(events, false)).not.to.have.property('reply');
  });

  it('is read by inspectJob as whole events, for the replay tool', () => {
    const { unreadable, valid, problems } = inspectJob(JSON.parse(JSON.stringify(jobDataOf(events, false))));
    expect(unreadable).to.equal(undefined);
    expect(problems).to.deep.equal([]);
    expect(valid).to.deep.equal(events);
  });

  it('refuses, as poison, fields that do not hold an event the store can take, saying which and why', () => {
    const good = fieldsOf(events[0]!);
    const cases: [unknown[], RegExp][] = [
      [[...good.slice(0, 4), '{"n":1'], /payload/],
      [[...good.slice(0, 4), '[1]'], /payload/],
      [[...good.slice(0, 4), `${'{"a":'.repeat(MAX_PAYLOAD_DEPTH)}{}${'}'.repeat(MAX_PAYLOAD_DEPTH)}`], /payload.*deep/],
      [[...good.slice(0, 4), { n: 1 }], /payload/],
      [['', ...good.slice(1)], /topic/],
      [[good[0], good[1], '2025-02-29T00:00:00Z', good[3], good[4]], /timestamp/],
      [good.slice(0, 4), /index 1/],
    ];
    for (const [bad, why] of cases) {
      const reason = reasonOf(newJobId(2), { v: 2, events: [good, bad] });
      expect(reason, JSON.stringify(bad).slice(0, 100)).to.match(/^1 invalid/).and.include('index 1').and.match(why);
    }
  });

  it('refuses a payload text the size limit refuses, even when written loosely', () => {
    // Spaces the API never writes: the text, not a reserialisation, is what would be stored.
    const loose = `{"a":1${' '.repeat(MAX_PAYLOAD_BYTES)}}`;
    expect(reasonOf(newJobId(1), { v: 2, events: [[...fieldsOf(events[0]!).slice(0, 4), loose]] })).to.include('index 0');
  });

  it('refuses a count that does not match the id, and a version it does not know', () => {
    const data = jobDataOf(events, false);
    expect(reasonOf(newJobId(3), data)).to.include('3').and.include('2');
    expect(reasonOf(newJobId(2), { ...data, v: 3 })).to.match(/version/);
    expect(reasonOf(newJobId(2), { v: 2 })).to.match(/events/);
    expect(reasonOf(newJobId(0), { v: 2, events: [] })).to.match(/no events/);
  });
});
