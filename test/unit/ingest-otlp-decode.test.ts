// The direct protobuf decoder (otlp-decode.ts) against the reference: protobufjs' own
// decoding into OTLP/JSON, then the OTLP/JSON mapping. Same events, digest included, for
// random requests and for the edge cases an exporter or a broken client can send.
import { expect } from 'chai';
import protobuf from 'protobufjs';
import { HttpError } from '../../services/api/http/errors.js';
import { decodeLogs } from '../../services/api/ingest/otlp-decode.js';
import { mapLogsRequest } from '../../services/api/ingest/otlp-map.js';
import { decodeLogsRequest, encodeLogsRequest } from '../../services/api/ingest/otlp-proto.js';
import { Random } from '../../tools/chaos/random.js';

const AT = '2025-01-01T00:00:00.000Z';
const { Long } = protobuf.util as unknown as { Long: { fromString(s: string, unsigned: boolean): unknown } };

type Outcome = { events: unknown } | { error: string };

function reference(bytes: Uint8Array): Outcome {
  try {
    return { events: mapLogsRequest(decodeLogsRequest(bytes), AT) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function direct(bytes: Uint8Array): Outcome {
  try {
    return { events: decodeLogs(Buffer.from(bytes), AT) };
  } catch (err) {
    expect(err).to.be.instanceOf(HttpError);
    expect((err as HttpError).status).to.equal(400);
    return { error: (err as Error).message };
  }
}

/** Both decode the bytes to the same events, or both refuse them; how many events there were. */
function expectSame(bytes: Uint8Array, what: string): number {
  const want = reference(bytes);
  const got = direct(bytes);
  if ('error' in want) {
    expect(got, `${what}: the reference refused it (${want.error})`).to.have.property('error');
    return 0;
  }
  expect(got, what).to.deep.equal(want);
  return (want.events as unknown[]).length;
}

const STRINGS = ['', 'a', 'INFO', 'ü and 日本', 'say "hi"', 'back\\slash', 'tab\tnew\nline\u0001', '😀', 'lone \ud800 half', 'x'.repeat(300), 'log.record.uid'];
const KEYS = ['k', 'service.name', 'host.name', 'service.instance.id', 'log.record.uid', '__proto__', '', 'é', 'b', 'a'];
const INTS = ['0', '1', '-1', '42', '9007199254740991', '9007199254740992', '-9007199254740993', '9223372036854775807', '-9223372036854775808'];
const DOUBLES = [0, -0, 1.5, -2.25, 1e300, 5e-324, NaN, Infinity, -Infinity, 3];
const FIXED64 = ['0', '1', '1700000000123456789', '253402300799999999999', '18446744073709551615', '1000000000'];

function anyValue(rnd: Random, depth: number): Record<string, unknown> {
  const kind = rnd.between(0, depth > 0 ? 7 : 5);
  switch (kind) {
    case 0:
      return { stringValue: rnd.pick(STRINGS) };
    case 1:
      return { boolValue: rnd.next() < 0.5 };
    case 2:
      return { intValue: Long.fromString(rnd.pick(INTS), false) };
    case 3:
      return { doubleValue: rnd.pick(DOUBLES) };
    case 4:
      return { bytesValue: Buffer.from(Array.from({ length: rnd.between(0, 5) }, () => rnd.between(0, 255))) };
    case 5:
      return {};
    case 6:
      return { arrayValue: { values: Array.from({ length: rnd.between(0, 3) }, () => anyValue(rnd, depth - 1)) } };
    default:
      return { kvlistValue: { values: keyValues(rnd, depth - 1, 3) } };
  }
}

function keyValues(rnd: Random, depth: number, most: number): Record<string, unknown>[] {
  return Array.from({ length: rnd.between(0, most) }, () => (rnd.next() < 0.1 ? { key: rnd.pick(KEYS) } : { key: rnd.pick(KEYS), value: anyValue(rnd, depth) }));
}

/** Each field present or not, at random. */
function some(rnd: Random, fields: Record<string, () => unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, make] of Object.entries(fields)) if (rnd.next() < 0.7) out[name] = make();
  return out;
}

function logRecord(rnd: Random): Record<string, unknown> {
  const id = (n: number) => Buffer.from(Array.from({ length: rnd.pick([0, n, n]) }, () => rnd.between(0, 255)));
  return some(rnd, {
    timeUnixNano: () => Long.fromString(rnd.pick(FIXED64), true),
    observedTimeUnixNano: () => Long.fromString(rnd.pick(FIXED64), true),
    severityNumber: () => rnd.pick([0, 1, 9, 24, -3]),
    severityText: () => rnd.pick(STRINGS),
    body: () => anyValue(rnd, 3),
    attributes: () => keyValues(rnd, 2, 5),
    droppedAttributesCount: () => rnd.pick([0, 1, 4294967295]),
    flags: () => rnd.pick([0, 1, 4294967295]),
    traceId: () => id(16),
    spanId: () => id(8),
    eventName: () => rnd.pick(STRINGS),
  });
}

function exportRequest(rnd: Random): Record<string, unknown> {
  return {
    resourceLogs: Array.from({ length: rnd.between(0, 3) }, () =>
      some(rnd, {
        resource: () => some(rnd, { attributes: () => keyValues(rnd, 2, 4), droppedAttributesCount: () => rnd.between(0, 3) }),
        schemaUrl: () => rnd.pick(STRINGS),
        scopeLogs: () =>
          Array.from({ length: rnd.between(0, 3) }, () =>
            some(rnd, {
              scope: () =>
                some(rnd, {
                  name: () => rnd.pick(STRINGS),
                  version: () => rnd.pick(STRINGS),
                  attributes: () => keyValues(rnd, 1, 3),
                  droppedAttributesCount: () => rnd.between(0, 3),
                }),
              schemaUrl: () => rnd.pick(STRINGS),
              logRecords: () => Array.from({ length: rnd.between(0, 4) }, () => logRecord(rnd)),
            }),
          ),
      }),
    ),
  };
}

// Hand-written wire bytes, for what protobufjs' encoder never writes: fields out of their
// order, unknown fields, nesting past the limit, wire types that do not match.
const LENGTH = 2;
const field = (n: number, wire: number) => (n << 3) | wire;
const message = (n: number, build: (w: protobuf.Writer) => void) => (w: protobuf.Writer) => {
  w.uint32(field(n, LENGTH)).fork();
  build(w);
  w.ldelim();
};
const bytesOf = (...parts: ((w: protobuf.Writer) => void)[]) => {
  const w = protobuf.Writer.create();
  for (const p of parts) p(w);
  return w.finish();
};
const str = (n: number, s: string) => (w: protobuf.Writer) => w.uint32(field(n, LENGTH)).string(s);
const unknowns = (w: protobuf.Writer) => {
  w.uint32(field(90, 0)).uint64(123);
  w.uint32(field(91, 1)).fixed64(7);
  w.uint32(field(92, LENGTH)).bytes(Buffer.from('skip me'));
  w.uint32(field(93, 5)).fixed32(9);
  w.uint32(field(94, 3)).uint32(field(1, 0)).uint32(5).uint32(field(94, 4));
};
const serviceName = (name: string) =>
  message(
    1,
    message(1, (w) => {
      str(1, 'service.name')(w);
      message(2, str(1, name))(w);
    }),
  );

describe('OTLP protobuf, decoded straight to events', () => {
  it('gives the reference decoding and mapping for random requests', () => {
    const seed = Date.now() % 1_000_000;
    const rnd = new Random(seed);
    let events = 0;
    for (let i = 0; i < 400; i++) events += expectSame(encodeLogsRequest(exportRequest(rnd)), `request ${i} of seed ${seed}`);
    expect(events).to.be.greaterThan(400);
  });

  it('maps every AnyValue kind, nested lists and maps, missing fields and keys given twice alike', () => {
    const value = (v: Record<string, unknown>) => ({ key: 'v', value: v });
    const all = [
      { key: 's', value: { stringValue: 'x' } },
      { key: 'b', value: { boolValue: false } },
      { key: 'i', value: { intValue: Long.fromString('-9223372036854775808', false) } },
      { key: 'd', value: { doubleValue: NaN } },
      { key: 'y', value: { bytesValue: Buffer.alloc(0) } },
      { key: 'none', value: {} },
      { key: 'absent' },
      { key: 'nested', value: { kvlistValue: { values: [{ key: 'l', value: { arrayValue: { values: [{ kvlistValue: { values: [{ key: 'deep', value: { bytesValue: Buffer.from([0, 255]) } }] } }, {}] } } }] } } },
      { key: 'a', value: { arrayValue: {} } },
      { key: 's', value: { stringValue: 'second' } },
      { key: '__proto__', value: { stringValue: 'own' } },
    ];
    const cases: Record<string, unknown>[] = [
      {},
      { resourceLogs: [{}] },
      { resourceLogs: [{ scopeLogs: [{}] }] },
      { resourceLogs: [{ scopeLogs: [{ logRecords: [{}] }] }] },
      { resourceLogs: [{ resource: { attributes: all }, scopeLogs: [{ scope: { attributes: all }, logRecords: [{ attributes: all, body: { kvlistValue: { values: all } } }] }] }] },
      { resourceLogs: [{ scopeLogs: [{ logRecords: all.map((kv) => ({ body: kv.value ?? {} })) }] }] },
      { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { intValue: 5 } }] }, scopeLogs: [{ logRecords: [{ attributes: [value({ stringValue: 'v' })] }] }] }] },
      { resourceLogs: [{ scopeLogs: [{ logRecords: [{ attributes: [{ key: 'log.record.uid', value: { arrayValue: { values: [{ intValue: 1 }] } } }] }] }] }] },
    ];
    cases.forEach((c, i) => expectSame(encodeLogsRequest(c), `case ${i}`));
  });

  it('reads fields in any order and skips unknown ones of every wire type', () => {
    const record = message(2, (w) => {
      unknowns(w);
      str(3, 'WARN')(w);
      w.uint32(field(1, 1)).fixed64(1_700_000_000_000_000_000);
      message(5, str(1, 'body'))(w);
    });
    const scopeLogs = message(2, (w) => {
      str(3, 'https://scope.schema')(w);
      record(w);
      unknowns(w);
      message(1, str(1, 'late scope'))(w);
      record(w);
    });
    const bytes = bytesOf(
      unknowns,
      message(1, (w) => {
        scopeLogs(w);
        str(3, 'https://resource.schema')(w);
        unknowns(w);
        serviceName('svc')(w);
      }),
    );
    expectSame(bytes, 'out of order');
    const events = decodeLogs(Buffer.from(bytes), AT);
    expect(events).to.have.length(2);
    expect(events[0]).to.deep.include({ topic: 'svc', source: 'svc' });
  });

  it("refuses what protobufjs' decoder refuses: bytes cut anywhere, nesting past its limit", () => {
    const bytes = encodeLogsRequest(exportRequest(new Random(7)));
    for (let cut = 0; cut < bytes.length; cut++) expectSame(bytes.subarray(0, cut), `cut at ${cut}`);
    // Request, ResourceLogs, ScopeLogs, LogRecord, then AnyValue and ArrayValue in turn; at
    // the bottom, a string or one more (empty) ArrayValue, so that every depth is tried.
    const nested = (levels: number, bottom: (w: protobuf.Writer) => void) => {
      let value = bottom;
      for (let i = 0; i < levels; i++) {
        const inner = value;
        value = message(5, message(1, inner));
      }
      return bytesOf(message(1, message(2, message(2, message(5, value)))));
    };
    const deepest = protobuf.Reader.recursionLimit;
    let refused = 0;
    for (let levels = deepest / 2 - 4; levels < deepest / 2 + 4; levels++) {
      for (const bottom of [str(1, 'bottom'), message(5, () => undefined)]) {
        if ('error' in reference(nested(levels, bottom))) refused++;
        expectSame(nested(levels, bottom), `${levels} levels of arrays`);
      }
    }
    expect(refused, 'the reference refused some depths and took others').to.be.within(1, 15);
  });

  it('refuses a known field sent with another wire type', () => {
    const bytes = bytesOf(message(1, message(2, message(2, (w) => w.uint32(field(1, 0)).uint64(5)))));
    expect(() => decodeLogs(Buffer.from(bytes), AT)).to.throw(HttpError, /wire type 0/);
  });
});
