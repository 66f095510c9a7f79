// The request bodies parse-stall sends: each a shape that once cost the API's event loop or
// memory far more than its size, at the largest size the default limits let through
// (MAX_BODY_BYTES 16 MiB, MAX_BATCH_EVENTS 10,000).
export type Shape = { name: string; what: string; contentType: string; body: Buffer };

const MIB = 1024 * 1024;
const BODY_LIMIT = 16 * MIB;

const head = (i: number) => `"topic":"stall","event_id":"e-${i}","timestamp":"2025-10-24T00:00:00Z","source":"parse-stall"`;
const event = (i: number, payload: string) => `{${head(i)},"payload":${payload}}`;

/** `unit` repeated as often as fits in `bytes` after `open` and before `close`, joined by `sep`. */
function fill(open: string, unit: string, sep: string, close: string, bytes: number): string {
  const n = Math.floor((bytes - open.length - close.length + sep.length) / (unit.length + sep.length));
  return open + Array<string>(n).fill(unit).join(sep) + close;
}

/** A batch of `count` valid events whose payload strings fill `bytes` in all. */
function validBatch(count: number, bytes: number): string {
  const per = Math.floor(bytes / count) - event(count, '{"s":""}').length - 1;
  const events: string[] = [];
  for (let i = 0; i < count; i++) events.push(event(i, `{"s":"${'x'.repeat(per)}"}`));
  return `[${events.join(',')}]`;
}

/** `count` events, each payload nested `depth` levels deep (over the 256 a payload may). */
function deepBatch(count: number, depth: number): string {
  const nested = '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
  const events: string[] = [];
  for (let i = 0; i < count; i++) events.push(event(i, nested));
  return `[${events.join(',')}]`;
}

export function shapes(): Shape[] {
  const json = 'application/json';
  const list: [string, string, string, string][] = [
    ['ndjson-empty-lines', '4 MiB of NDJSON `{}` lines (413)', 'application/x-ndjson', fill('', '{}', '\n', '\n', 4 * MIB)],
    ['array-of-empty', '16 MiB of `[{},{},...]` (413)', json, fill('[', '{}', ',', ']', BODY_LIMIT)],
    ['million-keys', 'one event, payload of 1,000,000 keys (422)', json, event(0, `{${Array.from({ length: 1_000_000 }, (_, k) => `"k${k}":0`).join(',')}}`)],
    ['wide-payload', 'one event, payload of 90,000 keys holding 160-byte strings (422)', json, event(0, fill('{', `"k":"${'v'.repeat(160)}"`, ',', '}', 90_000 * 170))],
    ['valid-batch', '10,000 valid events, 16 MiB (202)', json, validBatch(10_000, BODY_LIMIT - 64)],
    ['deep-payloads', '2,800 events, payloads 900 levels deep (422)', json, deepBatch(2_800, 900)],
    ['long-string', 'one event, one 15 MiB string in its payload (422)', json, event(0, `{"s":"${'a'.repeat(15 * MIB)}"}`)],
    ['many-escapes', 'one event, a payload string of 2.6 M `\\u0041` escapes (422)', json, event(0, `{"s":"${'\\u0041'.repeat(Math.floor((BODY_LIMIT - 200) / 6))}"}`)],
    ['escaped-keys', '10,000 events, 100 escaped keys each (202)', json, escapedKeys(10_000, 100)],
  ];
  return list.map(([name, what, contentType, text]) => ({ name, what, contentType, body: Buffer.from(text) }));
}

/** Valid events whose payload keys are written with escapes: each key is decoded on its own. */
function escapedKeys(count: number, keys: number): string {
  const payload = `{${Array.from({ length: keys }, (_, k) => `"\\u006b${k}":${k}`).join(',')}}`;
  const events: string[] = [];
  for (let i = 0; i < count; i++) events.push(event(i, payload));
  return `[${events.join(',')}]`;
}
