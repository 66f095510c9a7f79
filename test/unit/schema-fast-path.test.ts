// validateEvents takes a fast path for valid events and asks valibot only about the rest.
// The two must never disagree: generated events, valid and not, get the same verdict and
// the same output from both.
import { expect } from 'chai';
import fc from 'fast-check';
import * as v from 'valibot';
import { EventSchema, validateEvents } from '../../shared/schema.js';

const control = fc.constantFrom('\u0000', '\n', '\t', '\u007f', '\u0085', '\u009f');
/** An object `depth` levels deep, as {"a": {"a": ... {}}}. */
function nested(depth: number): Record<string, unknown> {
  let o: Record<string, unknown> = {};
  for (let i = 1; i < depth; i++) o = { a: o };
  return o;
}

const textish = fc.oneof(
  fc.string({ minLength: 1, maxLength: 20 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }),
  fc.constant(''),
  fc.constant('x'.repeat(255)),
  fc.constant('x'.repeat(256)),
  fc.constant('😀'.repeat(255)),
  fc.constant('😀'.repeat(256)),
  fc.constant('a\ud800b'),
  fc.constant('\udfff'),
  control.map((c) => `a${c}b`),
  fc.integer(),
  fc.constant(null),
  fc.constant(undefined),
);
const timestamp = fc.oneof(
  fc.date({ min: new Date('0001-01-01'), max: new Date('9999-12-31'), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom(
    '2025-10-24T00:00:00Z',
    '2025-10-24T00:00:00+07:00',
    '2025-10-24T00:00:00.123456-0330',
    '2025-10-24T00:00',
    '2025-02-29T00:00:00Z',
    '2024-02-29T00:00:00Z',
    '2025-13-01T00:00:00Z',
    '2025-10-24T24:00:00Z',
    '2025-10-24',
    'yesterday',
  ),
  fc.integer(),
  fc.constant(undefined),
);
const payload = fc.oneof(
  fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })),
  fc.constant({ __proto__: null, constructor: 1 }),
  fc.array(fc.integer()),
  fc.constant(null),
  fc.string(),
  fc.constant({ big: 'x'.repeat(256 * 1024) }),
  fc.constantFrom(255, 256, 257, 2000).map(nested),
);
const valid = {
  topic: 'orders',
  event_id: 'e-42',
  timestamp: '2025-10-24T00:00:00Z',
  source: 'checkout',
  payload: { amount: 12 },
};
const fields = { topic: textish, event_id: textish, timestamp, source: textish, payload };
// A valid event with one field changed (so the others never hide the one under test),
// free-form records, and anything at all.
const oneFieldChanged = fc
  .constantFrom(...(Object.keys(fields) as (keyof typeof fields)[]))
  .chain((key) => fields[key].map((value) => ({ ...valid, [key]: value })));
const item = fc.oneof(
  oneFieldChanged,
  oneFieldChanged,
  fc.record({ ...fields, extra: fc.anything() }, { requiredKeys: [] }),
  fc.anything(),
);

describe('schema fast path', () => {
  it('agrees with the valibot schema on every input', () => {
    fc.assert(
      fc.property(item, (x) => {
        const fast = validateEvents([x]);
        const slow = v.safeParse(EventSchema, x);
        const slowOk = slow.success && !Array.isArray(x);
        expect(fast.ok, JSON.stringify(x)?.slice(0, 200)).to.equal(slowOk);
        if (fast.ok && slow.success) expect(fast.events[0]).to.deep.equal(slow.output);
      }),
      { numRuns: 3000 },
    );
  });
});
