// validateEvents takes a fast path for valid events and asks valibot only about the rest.
// The two must never disagree: generated events, valid and not, get the same verdict and
// the same output from both.
import { expect } from 'chai';
import fc from 'fast-check';
import { anEvent } from '../support/events.js';
import * as v from 'valibot';
import { EventSchema, isIsoDateTime, payloadJson, validateEvents } from '../../shared/schema.js';

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
const valid = anEvent();
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

describe('isIsoDateTime', () => {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  /** Whether y-m-d is a real date, asked of Date rather than of the code under test. */
  const realDate = (y: number, m: number, d: number) => {
    const date = new Date(0);
    date.setUTCFullYear(y, m - 1, d);
    return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
  };

  it('agrees with Date on which dates and times exist, in every written form', () => {
    fc.assert(
      fc.property(
        fc.record({
          y: fc.integer({ min: 0, max: 9999 }),
          mo: fc.integer({ min: 0, max: 13 }),
          d: fc.integer({ min: 0, max: 32 }),
          h: fc.integer({ min: 0, max: 25 }),
          mi: fc.integer({ min: 0, max: 61 }),
          s: fc.option(fc.integer({ min: 0, max: 61 })),
          frac: fc.option(fc.stringMatching(/^[0-9]{1,9}$/)),
          zone: fc.oneof(
            fc.constantFrom('', 'Z', 'z'),
            fc.record({ sign: fc.constantFrom('+', '-'), oh: fc.integer({ min: 0, max: 25 }), om: fc.integer({ min: 0, max: 61 }), colon: fc.boolean() }),
          ),
        }),
        ({ y, mo, d, h, mi, s, frac, zone }) => {
          let text = `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}`;
          if (s !== null) text += `:${pad(s)}${frac !== null ? `.${frac}` : ''}`;
          let zoneOk = true;
          if (typeof zone === 'string') text += zone;
          else {
            text += `${zone.sign}${pad(zone.oh)}${zone.colon ? ':' : ''}${pad(zone.om)}`;
            zoneOk = zone.oh <= 23 && zone.om <= 59;
          }
          const expected = mo >= 1 && mo <= 12 && realDate(y, mo, d) && h <= 23 && mi <= 59 && (s === null || s <= 59) && zoneOk;
          expect(isIsoDateTime(text), text).to.equal(expected);
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('payloadJson', () => {
  it('gives the JSON of the payload, whether or not validation serialized it already', () => {
    const payload = JSON.parse('{"__proto__": {"a": 1}, "n": 1.5, "s": "é😀", "deep": {"x": [null, true]}}') as Record<string, unknown>;
    const result = validateEvents([anEvent({ payload })]);
    expect(result.ok).to.equal(true);
    const validated = (result as { events: { payload: Record<string, unknown> }[] }).events[0]!.payload;
    expect(payloadJson(validated)).to.equal(JSON.stringify(payload));
    const fresh = { b: 2, a: [1] };
    expect(payloadJson(fresh)).to.equal('{"b":2,"a":[1]}');
  });
});
