// The batch limit counted on the text, before any parsing: the count must be what parsing
// would find, whatever strings and nesting hold, and a body past the limit is refused
// without its items being parsed.
import { expect } from 'chai';
import { jsonItems, ndjsonItems } from '../../services/api/publish/items.js';
import { finish } from '../../services/api/publish/pace.js';
import * as scans from '../../services/api/publish/text-limits.js';
import { MAX_PAYLOAD_BYTES } from '../../shared/schema.js';
import { HttpError } from '../../services/api/http/errors.js';

const { EARLY_PAYLOAD_BYTES, MAX_PAYLOAD_COMMAS } = scans;
const countJsonItems = (text: string, stop: number) => finish(scans.countJsonItems(text, stop));
const countNdjsonItems = (text: string, stop: number) => finish(scans.countNdjsonItems(text, stop));
const oversizedPayloadAt = (text: string) => finish(scans.oversizedPayloadAt(text));

const ev = (i: number, extra = '') => `{"topic":"t","event_id":"e${i}","timestamp":"2025-01-01T00:00:00Z","source":"s","payload":{"i":${i}${extra}}}`;

async function refusal(fn: () => unknown): Promise<HttpError> {
  try {
    await fn();
  } catch (err) {
    return err as HttpError;
  }
  throw new Error('expected a refusal');
}

describe('counting items before parsing', () => {
  const bodies = [
    '[]',
    ' [ ] ',
    `[${ev(1)}]`,
    `[${ev(1)},${ev(2)},${ev(3)}]`,
    `[ ${ev(1)} , ${ev(2)} ]`,
    `[${ev(1, ',"s":"a,b],[{\\"x\\":\\"]"')},${ev(2, ',"a":[1,2,[3,4]],"o":{"events":[1,2,3]}')}]`,
    `[${ev(1, ',"bs":"\\\\"')},${ev(2, ',"bs":"\\\\\\""')}]`,
    `{"events":[]}`,
    `{"events":[${ev(1)},${ev(2)}]}`,
    `{"before":[1,2,3,4],"x":{"events":[1,2,3]},"events":[${ev(1)},${ev(2)}],"after":[1]}`,
    `{"nested":{"events":[1,2,3,4,5]},"events":[${ev(1)}]}`,
    `{"events\\"":[1,2,3],"events":[${ev(1)}]}`,
    ev(1),
    '[1,"a",null,[],{},true]',
  ];
  for (const body of bodies) {
    it(`counts what JSON.parse finds in ${body.slice(0, 60)}`, async () => {
      const parsed = JSON.parse(body) as unknown;
      const expected = Array.isArray(parsed)
        ? parsed.length
        : Array.isArray((parsed as { events?: unknown }).events)
          ? (parsed as { events: unknown[] }).events.length
          : 1;
      expect(countJsonItems(body, Infinity)).to.equal(expected);
      expect((await jsonItems(body, expected)).checks.count).to.equal(expected);
      if (expected > 0) expect((await refusal(() => jsonItems(body, expected - 1))).status).to.equal(413);
    });
  }

  it('counts NDJSON lines as parsing does, blank lines skipped', async () => {
    const text = `${ev(1)}\n\n  \r\n${ev(2)}\r\n\u00a0\n${ev(3)}`;
    expect(countNdjsonItems(text, Infinity)).to.equal(3);
    expect((await ndjsonItems(text)).checks.count).to.equal(3);
    expect((await ndjsonItems(text, 3)).checks.count).to.equal(3);
    expect((await refusal(() => ndjsonItems(text, 2))).status).to.equal(413);
  });

  it('stops counting past the limit, and refuses huge bodies of tiny items with 413 batch_too_large', async () => {
    const nd = '{}\n'.repeat(4 * 1024 * 1024 / 3);
    const arr = `[${'{},'.repeat(16 * 1024 * 1024 / 3)}{}]`;
    expect(countNdjsonItems(nd, 10_001)).to.equal(10_001);
    expect(countJsonItems(arr, 10_001)).to.equal(10_001);
    const a = await refusal(() => ndjsonItems(nd, 10_000));
    expect([a.status, a.code]).to.deep.equal([413, 'batch_too_large']);
    const b = await refusal(() => jsonItems(arr, 10_000));
    expect([b.status, b.code]).to.deep.equal([413, 'batch_too_large']);
    const c = await refusal(() => jsonItems(`{"events":${arr}}`, 10_000));
    expect([c.status, c.code]).to.deep.equal([413, 'batch_too_large']);
  });
});

describe('payloads too large to serialize within the limit, found before parsing', () => {
  const many = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(',')}}`;
  const event = (payload: string, extra = '') => `{"topic":"t","event_id":"e","timestamp":"2025-01-01T00:00:00Z","source":"s"${extra},"payload":${payload}}`;
  const big = many(MAX_PAYLOAD_COMMAS + 2);

  it('finds the event whose payload holds more commas than any payload within the limit', () => {
    expect(oversizedPayloadAt(event(big))).to.equal(0);
    expect(oversizedPayloadAt(`[${event('{}')}, 7, ${event(big)}]`)).to.equal(2);
    expect(oversizedPayloadAt(`{"x":[1,2],"events":[${event('{}')},${event(big)}]}`)).to.equal(1);
    expect(oversizedPayloadAt(`[${event(`[${'1,'.repeat(MAX_PAYLOAD_COMMAS + 1)}1]`)}]`)).to.equal(0);
  });

  it('leaves alone what may be valid: commas in strings, in ignored fields, or a payload just within', () => {
    expect(oversizedPayloadAt(event(`{"s":"${','.repeat(MAX_PAYLOAD_COMMAS + 100)}"}`))).to.equal(-1);
    expect(oversizedPayloadAt(event('{}', `,"junk":${big}`))).to.equal(-1);
    expect(oversizedPayloadAt(`{"payload":${big},"events":[${event('{}')}]}`)).to.equal(-1);
    // Exactly the limit once serialized, however long its text: escapes, whitespace, digits.
    const exact = `{"s":"${'x'.repeat(MAX_PAYLOAD_BYTES - 8)}"}`;
    const escaped = `{"s":"${'\\u0078'.repeat(MAX_PAYLOAD_BYTES - 8)}"}`;
    const spaced = `{ "n" : 1.${'0'.repeat(MAX_PAYLOAD_BYTES)} , "s" : "${'x'.repeat(MAX_PAYLOAD_BYTES - 14)}"${' '.repeat(MAX_PAYLOAD_BYTES)} }`;
    for (const payload of [exact, escaped, spaced]) {
      expect(Buffer.byteLength(JSON.stringify(JSON.parse(payload)))).to.equal(MAX_PAYLOAD_BYTES);
      expect(oversizedPayloadAt(event(payload))).to.equal(-1);
    }
  });

  it('finds the event whose payload text, counted as it serializes at the least, is over four times the limit', () => {
    const long = `{"s":"${'x'.repeat(EARLY_PAYLOAD_BYTES - 7)}"}`;
    expect(oversizedPayloadAt(event(`{"s":"${'x'.repeat(EARLY_PAYLOAD_BYTES - 8)}"}`))).to.equal(-1);
    expect(oversizedPayloadAt(`[${event('{}')},${event(long)}]`)).to.equal(1);
    const wide = `{${Array.from({ length: 8000 }, (_, i) => `"k${i}":"${'\\u0078'.repeat(130)}"`).join(',')}}`;
    expect(Buffer.byteLength(JSON.stringify(JSON.parse(wide)))).to.be.above(EARLY_PAYLOAD_BYTES);
    expect(oversizedPayloadAt(event(wide))).to.equal(0);
  });

  it('refuses such a body with 422 naming the event and its payload, NDJSON too', async () => {
    const a = await refusal(() => jsonItems(`[${event('{}')},${event(big)}]`));
    expect([a.status, a.code]).to.deep.equal([422, 'validation_failed']);
    expect((a.extra.details as { index: number; path: string }[])[0]).to.include({ index: 1, path: 'payload' });
    const b = await refusal(() => ndjsonItems(`${event('{}')}\n${event(big)}\n`));
    expect((b.extra.details as { index: number; path: string }[])[0]).to.include({ index: 1, path: 'payload' });
  });

  it('never refuses a payload that serializes within the limit (checked against JSON.stringify)', () => {
    for (const n of [10, 1000, MAX_PAYLOAD_COMMAS / 4]) {
      const payload = many(n);
      const fits = Buffer.byteLength(JSON.stringify(JSON.parse(payload))) <= MAX_PAYLOAD_BYTES;
      if (fits) expect(oversizedPayloadAt(event(payload))).to.equal(-1);
    }
  });
});
