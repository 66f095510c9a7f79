// OTLP's AnyValue and KeyValue read straight from protobuf with protobufjs' Reader, field by
// field (numbers from the official definitions, otlp-proto.ts), each value read once into
// both forms the mapping needs: plain JSON for the payload and the digest's canonical JSON
// text. Both are what otlp-map.ts makes of the same values decoded into OTLP/JSON's shape
// (plain() and canonical()); the unit tests hold the two to the same events.
import protobuf, { type Reader } from 'protobufjs';
import { HttpError } from '../http/errors.js';
import { fieldNumbers } from './otlp-proto.js';

/** A value read: as plain JSON, and as canonical JSON text for the digest. */
export type Value = { plain: unknown; canon: string };

/** KeyValues read: as a plain object (a key given twice: the last wins), and their canonical JSON pairs in the order given. */
export type KeyValues = { plain: Record<string, unknown>; pairs: Pair[] };
type Pair = { key: string; text: string };

/** An absent or empty AnyValue. */
export const NO_VALUE: Value = { plain: null, canon: 'null' };

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
export const WIRE_FIXED32 = 5;

const ANY = fieldNumbers('common.v1.AnyValue', ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue']);
const ARRAY = fieldNumbers('common.v1.ArrayValue', ['values']);
const KVLIST = fieldNumbers('common.v1.KeyValueList', ['values']);
const KEY_VALUE = fieldNumbers('common.v1.KeyValue', ['key', 'value']);

export const undecodable = (message: string) =>
  new HttpError(400, 'invalid_otlp', `the body is not an OTLP ExportLogsServiceRequest in protobuf: ${message}`);

/** Checks a known field's wire type (protobufjs would read a mismatched one as garbage). */
export function expectWire(tag: number, wire: number): void {
  if ((tag & 7) !== wire) throw undecodable(`field ${tag >>> 3} has wire type ${tag & 7}, not ${wire}`);
}

/**
 * Enters a message embedded in one at `depth` (the request's is 0): its end, checked against
 * the bytes there are, and its depth against protobufjs' own limit, so that the bodies its
 * decoder refuses are refused here.
 */
export function enter(r: Reader, tag: number, depth: number): number {
  expectWire(tag, WIRE_LENGTH);
  if (depth + 1 > protobuf.Reader.recursionLimit) throw undecodable('maximum nesting depth exceeded');
  const length = r.uint32();
  const end = r.pos + length;
  if (end > r.len) throw undecodable(`index out of range: ${r.pos} + ${length} > ${r.len}`);
  return end;
}

/** Leaves an embedded message: its last field must end where it does. */
export function leave(r: Reader, end: number): void {
  if (r.pos !== end) throw undecodable(`a field runs past the end of its message at ${end}`);
}

/** A length-delimited field's bytes in an encoding of Buffer's, without copying them. */
export function bytesAs(r: Reader, tag: number, encoding: 'hex' | 'base64'): string {
  expectWire(tag, WIRE_LENGTH);
  const length = r.uint32();
  const start = r.pos;
  r.skip(length);
  return (r.buf as Buffer).toString(encoding, start, start + length);
}

/** What JSON.stringify writes differently from the text itself: quote, backslash, controls, surrogates (a lone one is escaped). */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON text, as JSON.stringify writes it; without copying a long text that needs no escape. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

export function readString(r: Reader, tag: number): string {
  expectWire(tag, WIRE_LENGTH);
  return r.string();
}

/** An int64 as plain JSON's number when exact, else its decimal string (as plain() in otlp-map.ts). */
function intValue(r: Reader): Value {
  const { low, high } = r.int64();
  // Exact whenever the result is a safe integer: high * 2^32 is, and the sum rounds only past 2^53.
  const n = high * 4294967296 + (low >>> 0);
  if (Number.isSafeInteger(n)) return { plain: n, canon: `["i","${n}"]` };
  const text = BigInt.asIntN(64, (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0)).toString();
  return { plain: text, canon: `["i","${text}"]` };
}

/** An AnyValue; of several members set, the last on the wire (protobuf's rule for a oneof). */
export function readAnyValue(r: Reader, end: number, depth: number): Value {
  let value = NO_VALUE;
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === ANY.stringValue) {
      const s = readString(r, tag);
      value = { plain: s, canon: `["s",${jsonString(s)}]` };
    } else if (field === ANY.boolValue) {
      expectWire(tag, WIRE_VARINT);
      value = r.bool() ? { plain: true, canon: '["b",true]' } : { plain: false, canon: '["b",false]' };
    } else if (field === ANY.intValue) {
      expectWire(tag, WIRE_VARINT);
      value = intValue(r);
    } else if (field === ANY.doubleValue) {
      expectWire(tag, WIRE_FIXED64);
      const d = r.double();
      // JSON has no NaN or infinities: they travel as proto3 JSON spells them.
      value = { plain: Number.isFinite(d) ? d : String(d), canon: `["d","${String(d)}"]` };
    } else if (field === ANY.arrayValue) {
      value = readArrayValue(r, enter(r, tag, depth), depth + 1);
    } else if (field === ANY.kvlistValue) {
      const kvs = readKeyValueList(r, enter(r, tag, depth), depth + 1);
      value = { plain: kvs.plain, canon: `["k",${canonicalPairs(kvs.pairs)}]` };
    } else if (field === ANY.bytesValue) {
      const b64 = bytesAs(r, tag, 'base64');
      value = { plain: b64, canon: `["y","${b64}"]` };
    } else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  return value;
}

function readArrayValue(r: Reader, end: number, depth: number): Value {
  const plain: unknown[] = [];
  const canon: string[] = [];
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === ARRAY.values) {
      const v = readAnyValue(r, enter(r, tag, depth), depth + 1);
      plain.push(v.plain);
      canon.push(v.canon);
    } else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  return { plain, canon: `["a",[${canon.join(',')}]]` };
}

function readKeyValueList(r: Reader, end: number, depth: number): KeyValues {
  const kvs: KeyValues = { plain: {}, pairs: [] };
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === KVLIST.values) readKeyValue(r, enter(r, tag, depth), depth + 1, kvs);
    else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  return kvs;
}

/** One KeyValue, added to `into`. */
export function readKeyValue(r: Reader, end: number, depth: number, into: KeyValues): void {
  let key = '';
  let value = NO_VALUE;
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === KEY_VALUE.key) key = readString(r, tag);
    else if (field === KEY_VALUE.value) value = readAnyValue(r, enter(r, tag, depth), depth + 1);
    else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  // An own property even for "__proto__", which an assignment would not make.
  if (key === '__proto__') Object.defineProperty(into.plain, key, { value: value.plain, enumerable: true, writable: true, configurable: true });
  else into.plain[key] = value.plain;
  into.pairs.push({ key, text: `[${jsonString(key)},${value.canon}]` });
}

/** Canonical pairs as JSON text, sorted by key (a stable sort: a key given twice keeps its order). */
export function canonicalPairs(pairs: Pair[]): string {
  if (pairs.length === 0) return '[]';
  if (pairs.length > 1) pairs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  let text = '[';
  for (let i = 0; i < pairs.length; i++) text += (i === 0 ? '' : ',') + pairs[i]!.text;
  return `${text}]`;
}
