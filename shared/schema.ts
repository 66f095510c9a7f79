// The event: the one definition, used by the API on the way in and, its rules for the fields
// and a check of the payload's text (eventOfFields), by workers on the way out of the queue
// (a job that fails there is a poison message).
import * as v from 'valibot';
import { isJsonObjectText } from './json-object-text.js';

export const MAX_TEXT_CHARS = 255;
export const MAX_PAYLOAD_BYTES = 256 * 1024;

// C0, DEL and C1: the characters that corrupt log lines and terminals.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Length in characters (code points), so an emoji counts once, as a person counts it. */
function charCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is one character.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Two ASCII digits at i as a number; the regex has already checked they are digits. */
function two(s: string, i: number): number {
  return (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;
}

/** ISO 8601 extended date and time, offset optional (then UTC); rejects impossible dates. */
export function isIsoDateTime(s: string): boolean {
  // The shape first; then the ranges, read straight from the fixed positions (this runs
  // for every event, twice, so it allocates nothing).
  if (!ISO_DATE_TIME.test(s)) return false;
  const year = two(s, 0) * 100 + two(s, 2);
  const month = two(s, 5);
  const day = two(s, 8);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  if (two(s, 11) > 23 || two(s, 14) > 59) return false;
  let i = 16;
  if (s[i] === ':') {
    if (two(s, i + 1) > 59) return false;
    i += 3;
    if (s[i] === '.' || s[i] === ',') for (i++; i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57; i++);
  }
  if (s[i] === '+' || s[i] === '-') {
    const hours = two(s, i + 1);
    const minutes = s[i + 3] === ':' ? two(s, i + 4) : two(s, i + 3);
    if (hours > 23 || minutes > 59) return false;
  }
  return true;
}

function isJsonObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * How deep a payload may nest. JSON.stringify recurses, so how deep it can go depends on the
 * stack it runs on: the API accepted payloads ~4,100 levels deep that the worker, deeper in
 * its own stack, could not serialize, and parked as poison after the 202. A fixed limit far
 * below that makes a payload valid or invalid everywhere alike.
 */
export const MAX_PAYLOAD_DEPTH = 256;

/** Iterative, so it cannot overflow the stack it guards. */
function payloadDepthOk(payload: Record<string, unknown>): boolean {
  const stack: [object, number][] = [[payload, 1]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [value, depth] = top;
    for (const child of Object.values(value)) {
      if (typeof child !== 'object' || child === null) continue;
      if (depth + 1 > MAX_PAYLOAD_DEPTH) return false;
      stack.push([child as object, depth + 1]);
    }
  }
  return true;
}

// The JSON the size check made, kept for the store (a worker checks, then stores): the
// payload is serialized once per process, not twice. Weak, so it lives as long as the event.
const serializedPayloads = new WeakMap<object, string>();

/** What a payload that came as JSON text (payloadFromJson) answers its text under. */
const JSON_TEXT = Symbol('payload JSON text');

/** The payload as JSON text: the text it came as, or the size check's serialization when there was one. */
export function payloadJson(payload: Record<string, unknown>): string {
  const text = (payload as { [JSON_TEXT]?: unknown })[JSON_TEXT];
  if (typeof text === 'string') return text;
  return serializedPayloads.get(payload) ?? JSON.stringify(payload);
}

type HeldText = { json: string; value?: Record<string, unknown> };
const parsed = (h: HeldText) => (h.value ??= JSON.parse(h.json) as Record<string, unknown>);

// Read-only: the text is what gets stored, so the object must not drift from it.
const payloadOfText: ProxyHandler<HeldText> = {
  get: (h, key): unknown => (key === JSON_TEXT ? h.json : (Reflect.get(parsed(h), key) as unknown)),
  has: (h, key) => key in parsed(h),
  ownKeys: (h) => Reflect.ownKeys(parsed(h)),
  getOwnPropertyDescriptor: (h, key) => Reflect.getOwnPropertyDescriptor(parsed(h), key),
  getPrototypeOf: (h) => Object.getPrototypeOf(parsed(h)) as object | null,
  set: () => false,
  defineProperty: () => false,
  deleteProperty: () => false,
};

/**
 * A payload a worker holds as the JSON text it was queued as (see shared/job.ts): the store
 * takes that text as it is (payloadJson), and nothing in the worker reads the object, so it
 * is parsed only if something does.
 */
function payloadFromJson(json: string): Record<string, unknown> {
  // Read through the handler, the proxy is the payload object the return type says.
  return new Proxy<HeldText>({ json }, payloadOfText);
}

/** A payload's JSON text as the store needs it: one object, within the size and depth limits. */
function payloadTextOk(json: string): boolean {
  return (json.length * 3 <= MAX_PAYLOAD_BYTES || Buffer.byteLength(json, 'utf8') <= MAX_PAYLOAD_BYTES) && isJsonObjectText(json, MAX_PAYLOAD_DEPTH);
}

function payloadSizeOk(payload: Record<string, unknown>, keepJson = true): boolean {
  try {
    const json = JSON.stringify(payload);
    if (keepJson) serializedPayloads.set(payload, json);
    // Quick accept: no string of n UTF-16 units is more than 3n UTF-8 bytes.
    return json.length * 3 <= MAX_PAYLOAD_BYTES || Buffer.byteLength(json, 'utf8') <= MAX_PAYLOAD_BYTES;
  } catch {
    // Nesting too deep for the serializer is not a payload anyone can read back.
    return false;
  }
}

// A surrogate half alone is not a character. SQLite stores text as UTF-8, which cannot
// hold one: it comes back as replacement characters, so two identities that differ only
// there would be stored as two events that read back as the same (topic, event_id).
const LONE_SURROGATE = /\p{Surrogate}/u;

// Each rule is one predicate, used by the valibot schema below (for the detailed answer)
// and by the fast path in validateEvents (for the common, valid case).
const wellFormed = (s: string) => !LONE_SURROGATE.test(s);
// Code points never outnumber UTF-16 units, so short strings need no counting.
const shortEnough = (s: string) => s.length <= MAX_TEXT_CHARS || charCount(s) <= MAX_TEXT_CHARS;
const noControl = (s: string) => !CONTROL_CHARS.test(s);

const isText = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && wellFormed(x) && shortEnough(x);
const isName = (x: unknown): x is string => isText(x) && noControl(x);

const text = () =>
  v.pipe(
    v.string('must be a string'),
    v.minLength(1, 'must not be empty'),
    v.check(wellFormed, 'must be valid Unicode text (a lone surrogate is not)'),
    v.check(shortEnough, `must be at most ${MAX_TEXT_CHARS} characters`),
  );

const name = () => v.pipe(text(), v.check(noControl, 'must not contain control characters'));

export const EventSchema = v.object(
  {
    topic: name(),
    event_id: name(),
    timestamp: v.pipe(
      v.string('must be a string'),
      v.check(isIsoDateTime, 'must be an ISO 8601 date and time, e.g. 2025-10-24T00:00:00Z'),
    ),
    source: text(),
    payload: v.pipe(
      // custom, not v.record: record would copy the object and drop keys such as __proto__,
      // and the payload must be stored exactly as published.
      v.custom<Record<string, unknown>>(isJsonObject, 'must be a JSON object'),
      v.check(payloadDepthOk, `must nest at most ${MAX_PAYLOAD_DEPTH} levels deep`),
      v.check(payloadSizeOk, `must serialize to at most ${MAX_PAYLOAD_BYTES} bytes of JSON`),
    ),
  },
  'must be a JSON object',
);

export type Event = v.InferOutput<typeof EventSchema>;

export type ValidationDetail = { index: number; path: string; message: string };

/** `invalid` counts every invalid event, also those past the MAX_DETAILS listed. */
type ValidationResult = { ok: true; events: Event[] } | { ok: false; details: ValidationDetail[]; invalid: number };

/** How many problems one answer lists at most; a 10,000-event batch of garbage gets a readable error. */
export const MAX_DETAILS = 1000;

/** Validates every item; unknown fields are dropped, so what is queued is exactly the five fields. */
/**
 * `keepPayloadJson: false` for a caller that never stores the events (the API): keeping their
 * JSON for the job cost its collector more than serialising each payload again (measured with
 * the bench's small payloads, docs/performance.md).
 */
export function validateEvents(items: readonly unknown[], { keepPayloadJson = true }: { keepPayloadJson?: boolean } = {}): ValidationResult {
  const events: Event[] = new Array<Event>(items.length);
  const details: ValidationDetail[] = [];
  let invalid = 0;
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    // valibot's object schema takes an array for an object and would report its five
    // fields as missing; an array is not an event at all.
    if (Array.isArray(item)) {
      invalid++;
      if (details.length < MAX_DETAILS) details.push({ index, path: '', message: 'must be a JSON object' });
      continue;
    }
    // Fast path: the same predicates as the schema, without building issues; only an
    // event that fails it goes through valibot, to say exactly what is wrong.
    if (isJsonObject(item)) {
      const { topic, event_id, timestamp, source, payload } = item;
      if (
        isName(topic) &&
        isName(event_id) &&
        typeof timestamp === 'string' &&
        isIsoDateTime(timestamp) &&
        isText(source) &&
        isJsonObject(payload) &&
        payloadDepthOk(payload) &&
        payloadSizeOk(payload, keepPayloadJson)
      ) {
        events[index] = { topic, event_id, timestamp, source, payload };
        continue;
      }
    }
    const result = v.safeParse(EventSchema, item);
    if (result.success) {
      events[index] = result.output;
      continue;
    }
    invalid++;
    for (const issue of result.issues) {
      if (details.length >= MAX_DETAILS) break;
      const path = v.getDotPath(issue) ?? '';
      const missing = issue.input === undefined && path !== '';
      details.push({ index, path, message: missing ? 'is required' : issue.message });
    }
  }
  return invalid === 0 ? { ok: true, events } : { ok: false, details, invalid };
}

/** An event's fields in order, its payload as JSON text: how a queued job carries it (shared/job.ts). */
export type EventFields = [topic: string, event_id: string, timestamp: string, source: string, payload: string];

export function fieldsOf(e: Event): EventFields {
  return [e.topic, e.event_id, e.timestamp, e.source, payloadJson(e.payload)];
}

/**
 * The event some queued fields hold, or undefined when they hold none: the schema's own rules
 * for the four names and the time, and for the payload a check of its text (one JSON object,
 * as deep and as large as the schema allows) in place of building the object again.
 */
export function eventOfFields(fields: unknown): Event | undefined {
  if (!Array.isArray(fields) || fields.length !== 5) return undefined;
  const [topic, event_id, timestamp, source, payload] = fields as unknown[];
  if (
    isName(topic) &&
    isName(event_id) &&
    typeof timestamp === 'string' &&
    isIsoDateTime(timestamp) &&
    isText(source) &&
    typeof payload === 'string' &&
    payloadTextOk(payload)
  ) {
    return { topic, event_id, timestamp, source, payload: payloadFromJson(payload) };
  }
  return undefined;
}
