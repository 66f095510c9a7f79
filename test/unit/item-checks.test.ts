// Each item of a body is checked as soon as it is parsed, and a batch that will be refused
// keeps none of its events: what validateBatch answers is what checking every item after
// parsing them all answered, and memory held for a refused body does not grow with it.
import { expect } from 'chai';
import { validateEvents, type ValidationDetail } from '../../shared/schema.js';
import { validateBatch } from '../../services/api/publish/body.js';
import { ItemChecks } from '../../services/api/publish/item-checks.js';
import { jsonItems, ndjsonItems } from '../../services/api/publish/items.js';

const ev = (i: number, extra: Record<string, unknown> = {}) => ({
  topic: 't',
  event_id: `e-${i}`,
  timestamp: '2025-10-24T00:00:00Z',
  source: 's',
  payload: { i },
  ...extra,
});

const refusal = (fn: () => unknown): { status: number; message: string; details?: ValidationDetail[] } => {
  try {
    fn();
  } catch (err) {
    const e = err as { status: number; message: string; extra: { details?: ValidationDetail[] } };
    return { status: e.status, message: e.message, details: e.extra.details };
  }
  throw new Error('not refused');
};

describe('items checked as they are parsed', () => {
  it('keeps the events while every item passed, and none from the first that did not', () => {
    const checks = new ItemChecks();
    for (let i = 0; i < 3; i++) checks.add(ev(i));
    expect(checks.events.map((e) => e.event_id)).to.deep.equal(['e-0', 'e-1', 'e-2']);
    checks.add(ev(3, { topic: '' }));
    expect(checks.events).to.deep.equal([]);
    checks.add(ev(4));
    expect(checks.events, 'nothing kept after a refused item').to.deep.equal([]);
    expect(checks.count).to.equal(5);
    expect([...checks.invalid]).to.deep.equal([3]);
    expect(checks.details.map((d) => d.index)).to.deep.equal([3]);
  });

  it('answers as validating every parsed item did: the same events, count and details', async () => {
    const deep = { payload: JSON.parse('{"a":'.repeat(300) + '{}' + '}'.repeat(300)) as unknown };
    const batches = [
      [ev(0), ev(1), ev(2)],
      [ev(0), ev(1, { event_id: 7 }), ev(2), ev(3, deep), [], ev(5, { payload: 'x' })],
      Array.from({ length: 150 }, (_, i) => ev(i, { source: 5 })),
    ];
    for (const batch of batches) {
      const expected = validateEvents(batch, { keepPayloadJson: false });
      for (const items of [await jsonItems(JSON.stringify(batch)), await jsonItems(JSON.stringify({ events: batch })), await ndjsonItems(batch.map((e) => JSON.stringify(e)).join('\n'))]) {
        if (expected.ok) {
          expect(validateBatch(items, 10_000)).to.deep.equal(expected.events);
          continue;
        }
        const r = refusal(() => validateBatch(items, 10_000));
        expect(r.status).to.equal(422);
        expect(r.message).to.equal(`${expected.invalid} event(s) are invalid; nothing was accepted`);
        expect(r.details).to.deep.equal(expected.details);
      }
    }
  });

  it('counts an event refused by its text once, whether or not the schema refused it too', async () => {
    // e-1 repeats a field (its text is refused, its value passes); e-2 also has a bad topic.
    const text = `[${JSON.stringify(ev(0))},{"topic":"t","topic":"t","event_id":"e-1","timestamp":"2025-10-24T00:00:00Z","source":"s","payload":{}},{"topic":"","topic":"","event_id":"e-2","timestamp":"2025-10-24T00:00:00Z","source":"s","payload":{}}]`;
    const items = await jsonItems(text);
    const r = refusal(() => validateBatch(items, 10_000));
    expect(r.message).to.equal('2 event(s) are invalid; nothing was accepted');
    expect(r.details!.map((d) => d.index)).to.deep.equal([1, 2, 2]);
  });
});
