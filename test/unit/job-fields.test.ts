// A queued job carries each event as its fields, the payload as JSON text, and a worker
// checks those with the schema's rules and a check of the text instead of the full schema.
// The two checks must agree: what the fields check passes, the schema passes with the same
// event and the same stored text; what it refuses, the schema refuses.
import { expect } from 'chai';
import fc from 'fast-check';
import { anEvent } from '../support/events.js';
import { isJsonObjectText } from '../../shared/json-object-text.js';
import { eventOfFields, fieldsOf, payloadJson, validateEvents, MAX_PAYLOAD_DEPTH, type Event } from '../../shared/schema.js';

function depthOf(x: unknown): number {
  if (typeof x !== 'object' || x === null) return 0;
  let deepest = 0;
  for (const child of Object.values(x)) deepest = Math.max(deepest, depthOf(child));
  return 1 + deepest;
}

/** What JSON.parse says of a text: one object, nested at most maxDepth levels. */
function parsesAsObject(text: string, maxDepth: number): boolean {
  try {
    const x: unknown = JSON.parse(text);
    return typeof x === 'object' && x !== null && !Array.isArray(x) && depthOf(x) <= maxDepth;
  } catch {
    return false;
  }
}

/** A JSON text with a few characters inserted, deleted or replaced. */
const mutated = fc
  .tuple(
    fc.json({ maxDepth: 4 }),
    fc.array(fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.constantFrom(...'{}[]",:\\ \t\n-+.eE0123456789tfnrulu\u0001é')), { maxLength: 3 }),
  )
  .map(([text, edits]) =>
    edits.reduce((s, [at, op, c]) => {
      const i = at % (s.length + 1);
      return op === 'insert' ? s.slice(0, i) + c + s.slice(i) : s.slice(0, i) + (op === 'replace' ? c : '') + s.slice(i + 1);
    }, text),
  );

describe('isJsonObjectText', () => {
  it('agrees with JSON.parse on JSON texts, whole and mangled', () => {
    let objects = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.oneof(fc.json({ maxDepth: 5 }), mutated, mutated.map((s) => `{"k":${s}}`)), fc.integer({ min: 1, max: 6 }), (text, maxDepth) => {
        const expected = parsesAsObject(text, maxDepth);
        expect(isJsonObjectText(text, maxDepth), JSON.stringify(text)).to.equal(expected);
        if (expected) objects++;
        else refused++;
      }),
      { numRuns: 20_000 },
    );
    // Both verdicts were exercised often enough to mean something.
    expect(objects).to.be.above(2000);
    expect(refused).to.be.above(2000);
  });

  it('counts the object itself as one level, arrays as levels too', () => {
    const nested = (levels: number) => '{"a":'.repeat(levels - 1) + '[' + '{}' + ']' + '}'.repeat(levels - 1);
    expect(isJsonObjectText(nested(MAX_PAYLOAD_DEPTH - 1), MAX_PAYLOAD_DEPTH)).to.equal(true);
    expect(isJsonObjectText(nested(MAX_PAYLOAD_DEPTH), MAX_PAYLOAD_DEPTH)).to.equal(false);
    expect(isJsonObjectText('{"a":"\\ud800"}', 1)).to.equal(true);
  });
});

const text = fc.oneof(fc.string({ minLength: 0, maxLength: 12 }), fc.constant('x'.repeat(256)), fc.constant('a\ud800'), fc.constant('a\u0085b'), fc.integer());
const payloadText = fc.oneof(
  fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })).map((p) => JSON.stringify(p)),
  fc.json({ maxDepth: 3 }),
  mutated,
  fc.constant(JSON.stringify({ big: 'x'.repeat(256 * 1024) })),
  fc.constant(`${'{"a":'.repeat(MAX_PAYLOAD_DEPTH - 1)}{}${'}'.repeat(MAX_PAYLOAD_DEPTH - 1)}`),
  fc.constant(`${'{"a":'.repeat(MAX_PAYLOAD_DEPTH)}{}${'}'.repeat(MAX_PAYLOAD_DEPTH)}`),
  fc.integer(),
);
const valid = fieldsOf(anEvent() as Event);
const oneFieldChanged = fc
  .tuple(fc.integer({ min: 0, max: 4 }), fc.oneof(text, payloadText, fc.constantFrom('2025-02-29T00:00:00Z', '2025-10-24T00:00:00+07:00')))
  .map(([at, value]) => valid.map((f, i) => (i === at ? value : f)));

/** The item the schema would judge: the fields as an event, the payload parsed when it is JSON. */
function asItem(fields: unknown[]): unknown {
  let payload = fields[4];
  try {
    payload = JSON.parse(payload as string);
  } catch {
    // Left as it is: not an object, so the schema refuses it.
  }
  return { topic: fields[0], event_id: fields[1], timestamp: fields[2], source: fields[3], payload };
}

describe('eventOfFields', () => {
  it('agrees with the schema, and passes the payload text on as it came', () => {
    fc.assert(
      fc.property(fc.oneof(oneFieldChanged, fc.array(fc.anything(), { minLength: 4, maxLength: 6 })), (fields) => {
        const fast = eventOfFields(fields);
        const slow = fields.length === 5 ? validateEvents([asItem(fields)]) : { ok: false as const };
        expect(fast !== undefined, JSON.stringify(fields).slice(0, 200)).to.equal(slow.ok);
        if (fast === undefined || !slow.ok) return;
        expect(payloadJson(fast.payload)).to.equal(fields[4]);
        expect(JSON.parse(JSON.stringify(fast))).to.deep.equal(JSON.parse(JSON.stringify(slow.events[0])));
      }),
      { numRuns: 5000 },
    );
  });

  it('reads as the payload object it stands for, and cannot be changed', () => {
    const original = JSON.parse('{"__proto__":{"a":1},"n":1.5,"s":"é😀","deep":{"x":[null,true]}}') as Record<string, unknown>;
    const e = eventOfFields([...valid.slice(0, 4), JSON.stringify(original)])!;
    expect(Object.keys(e.payload)).to.deep.equal(Object.keys(original));
    expect(e.payload.n).to.equal(1.5);
    expect(e.payload).to.deep.equal(original);
    expect(JSON.stringify(e.payload)).to.equal(JSON.stringify(original));
    expect(() => {
      e.payload.n = 2;
    }).to.throw(TypeError);
  });
});
