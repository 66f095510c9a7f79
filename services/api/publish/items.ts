// From a body's text to the items it holds, before the schema sees them: the three JSON
// shapes and NDJSON lines, plus what the text says that JSON.parse's value hides (a number a
// double would change, a key given twice), each tied to the event and path it is in.
import { MAX_DETAILS, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, type ValidationDetail } from '../../../shared/schema.js';
import { HttpError } from '../http/errors.js';
import { MAX_JSON_DEPTH, depthExceededAt, scanJson, type Segment, type TextFinding, type Where } from './json-text.js';

export type BodyKind = 'json' | 'ndjson';

/** The items of a body, and the problems its text has: `invalid` holds every index with one. */
export type Items = { items: unknown[]; details: ValidationDetail[]; invalid: Set<number> };

/** The fields an event is read by: a key repeated among these changes what is stored. */
const FIELDS = new Set(['topic', 'event_id', 'timestamp', 'source', 'payload']);

/** Where the events of a JSON body are: its elements, the elements of its `events`, or the body itself. */
type Shape = 'array' | 'events' | 'single';

const dotPath = (path: readonly Segment[]) => path.join('.');

/** The event a position is in (index, and the level its fields are at), or undefined when it is in none. */
function eventAt(where: Where, shape: Shape): { index: number; base: number } | undefined {
  if (shape === 'single') return { index: 0, base: 0 };
  const level = shape === 'array' ? 0 : 1;
  if (shape === 'events' && where.at(0) !== 'events') return undefined;
  const index = where.at(level);
  return typeof index === 'number' ? { index, base: level + 1 } : undefined;
}

function describe(finding: TextFinding, token: string): string {
  if (finding === 'duplicate_key') return `has the key "${token}" twice in one object: one value would be lost`;
  return `holds the number ${token}, which cannot be stored exactly (it would read back as ${String(Number(token))}); send it as a string`;
}

function collect(text: string, shape: Shape, out: Items, indexOffset = 0): void {
  scanJson(text, (finding, where, token) => {
    if (shape === 'events' && finding === 'duplicate_key' && where.depth === 1 && token === 'events') {
      throw new HttpError(400, 'invalid_json', 'the body has the key "events" twice: which batch is meant is unclear');
    }
    const at = eventAt(where, shape);
    if (at === undefined) return;
    const field = where.at(at.base);
    // Unknown fields are ignored, so what they hold changes nothing stored.
    const relevant = field === 'payload' || (finding === 'duplicate_key' && where.depth === at.base + 1 && FIELDS.has(token));
    if (!relevant) return;
    const index = at.index + indexOffset;
    out.invalid.add(index);
    if (out.details.length < MAX_DETAILS) {
      out.details.push({ index, path: dotPath(where.path().slice(at.base)), message: describe(finding, token) });
    }
  });
}

/** Refuses text nested deeper than MAX_JSON_DEPTH before JSON.parse spends seconds on it. */
function refuseDeepNesting(text: string, guess: (path: Segment[]) => { index: number; path: Segment[] }): void {
  const at = depthExceededAt(text);
  if (at === -1) return;
  let path: Segment[] = [];
  try {
    path = scanJson(text, () => undefined, 0, at);
  } catch {
    // Malformed before the depth was reached: where it is stays unknown.
  }
  const { index, path: inEvent } = guess(path);
  const field = inEvent[0];
  const message =
    field === 'payload'
      ? `must nest at most ${MAX_PAYLOAD_DEPTH} levels deep`
      : `nests deeper than ${MAX_JSON_DEPTH} levels, the most a body may`;
  throw new HttpError(422, 'validation_failed', `the body nests deeper than ${MAX_JSON_DEPTH} levels; nothing was accepted`, {
    details: [{ index, path: field === undefined ? '' : String(field), message }],
  });
}

function guessJson(path: Segment[]): { index: number; path: Segment[] } {
  if (typeof path[0] === 'number') return { index: path[0], path: path.slice(1) };
  if (path[0] === 'events' && typeof path[1] === 'number') return { index: path[1], path: path.slice(2) };
  return { index: 0, path };
}

/**
 * The batch limit, checked before anything is parsed: a body of a million `{}` would take
 * seconds of the event loop and hundreds of MB to parse, only to be refused after.
 */
function tooMany(max: number): HttpError {
  return new HttpError(413, 'batch_too_large', `the request holds more than ${max} events; at most ${max} are accepted at once`);
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The index just past the string whose opening quote is at `open` (text.length if unclosed). */
function stringEnd(text: string, open: number): number {
  let q = open;
  for (;;) {
    q = text.indexOf('"', q + 1);
    if (q === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
  }
}

/**
 * How many events a JSON body holds, counted on its text without parsing it, up to
 * `stop` (counting ends there): the elements of a top-level array, or of the top-level
 * object's `events` array. Malformed text gives some count; JSON.parse says what is wrong.
 */
export function countJsonItems(text: string, stop: number): number {
  let i = 0;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  const top = text.charCodeAt(i);
  if (top !== 0x5b && top !== 0x7b) return 1;
  // Depth of the array whose elements are counted: 1 for a bare array; 2 for `events`.
  let target = top === 0x5b ? 1 : -1;
  let depth = 0;
  let count = 0;
  let expectElement = false;
  let lastKey = '';
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) continue;
    if (expectElement && depth === target && c !== 0x5d) {
      count++;
      if (count >= stop) return count;
    }
    expectElement = false;
    if (c === 0x22) {
      const end = stringEnd(text, i);
      if (depth === 1 && top === 0x7b) lastKey = text.slice(i + 1, end - 1);
      i = end - 1;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (c === 0x5b && depth === 2 && top === 0x7b && lastKey === 'events' && target === -1) target = 2;
      if (depth === target) expectElement = true;
    } else if (c === 0x5d || c === 0x7d) {
      if (depth === target && c === 0x5d) return count;
      depth--;
    } else if (c === 0x2c && depth === target) {
      expectElement = true;
    }
  }
  return top === 0x7b && target === -1 ? 1 : count;
}

/**
 * Commas a payload's text may hold at most and still serialize within MAX_PAYLOAD_BYTES:
 * n commas separate n + 1 values of at least one character each, and serializing keeps
 * every one of them (duplicate keys aside, which are refused anyway), so more commas than
 * half the limit is a payload too large, whatever its whitespace, escapes or numbers.
 */
export const MAX_PAYLOAD_COMMAS = MAX_PAYLOAD_BYTES / 2;

/**
 * The index of the first event whose `payload` text holds more than MAX_PAYLOAD_COMMAS
 * commas, or -1: such an event is invalid whatever else it holds, found by a scan that
 * stops there, before JSON.parse spends seconds on a million keys. The events are where
 * the body's shape puts them: a bare array's elements, the top-level object's `events`
 * elements, or the body itself.
 */
export function oversizedPayloadAt(text: string): number {
  let i = 0;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  const top = text.charCodeAt(i);
  if (top !== 0x5b && top !== 0x7b) return -1;
  // Depth of the events' objects: 2 in a bare array, 3 in `events`, 1 for a single event.
  let itemDepth = top === 0x5b ? 2 : 1;
  let depth = 0;
  let index = 0;
  /** The last string at each depth: at an object's level, the key of what opens next. */
  const keys: string[] = [];
  let payloadDepth = 0;
  let commas = 0;
  // A single event's payload too large counts only if the body has no `events` array after all.
  let singleOversized = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i);
      // Only the levels down to an event's fields are asked about: deeper keys are not kept.
      if (depth <= 3) keys[depth] = text.slice(i + 1, end - 1);
      i = end - 1;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      keys[depth] = '';
      if (top === 0x7b && depth === 2 && c === 0x5b && keys[1] === 'events' && itemDepth === 1) {
        itemDepth = 3;
        index = 0;
        payloadDepth = 0;
      }
      if (payloadDepth === 0 && depth === itemDepth + 1 && keys[itemDepth] === 'payload' && !(itemDepth === 1 && singleOversized)) {
        payloadDepth = depth;
        commas = 0;
      }
    } else if (c === 0x5d || c === 0x7d) {
      if (depth === payloadDepth) payloadDepth = 0;
      depth--;
    } else if (c === 0x2c) {
      if (itemDepth > 1 && depth === itemDepth - 1) index++;
      if (payloadDepth !== 0 && ++commas > MAX_PAYLOAD_COMMAS) {
        if (itemDepth > 1) return index;
        singleOversized = true;
        payloadDepth = 0;
      }
    }
  }
  return itemDepth === 1 && singleOversized ? 0 : -1;
}

function refuseOversizedPayload(text: string, indexOffset = 0): void {
  // A text shorter than the limit cannot hold that many commas.
  if (text.length <= MAX_PAYLOAD_COMMAS) return;
  const at = oversizedPayloadAt(text);
  if (at === -1) return;
  throw new HttpError(422, 'validation_failed', 'an event\'s payload is larger than the limit; nothing was accepted', {
    details: [{ index: at + indexOffset, path: 'payload', message: `must serialize to at most ${MAX_PAYLOAD_BYTES} bytes of JSON` }],
  });
}

/** Whether text[start, end) holds anything but whitespace. */
function blank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isSpace(text.charCodeAt(i))) return false;
  return true;
}

/** Non-blank NDJSON lines, counted up to `stop`. */
export function countNdjsonItems(text: string, stop: number): number {
  let count = 0;
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (!blank(text, start, end) && text.slice(start, end).trim() !== '' && ++count >= stop) return count;
    start = end + 1;
  }
  return count;
}

export function jsonItems(text: string, maxItems = Infinity): Items {
  if (text.trim() === '') throw new HttpError(400, 'invalid_json', 'the body is empty');
  if (maxItems !== Infinity && countJsonItems(text, maxItems + 1) > maxItems) throw tooMany(maxItems);
  refuseDeepNesting(text, guessJson);
  refuseOversizedPayload(text);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'invalid_json', `the body is not valid JSON: ${(err as Error).message}`);
  }
  let shape: Shape = 'single';
  let items: unknown[] = [body];
  if (Array.isArray(body)) {
    shape = 'array';
    items = body;
  } else if (typeof body === 'object' && body !== null && Array.isArray((body as { events?: unknown }).events)) {
    shape = 'events';
    items = (body as { events: unknown[] }).events;
  }
  const out: Items = { items, details: [], invalid: new Set() };
  collect(text, shape, out);
  return out;
}

export function ndjsonItems(text: string, maxItems = Infinity): Items {
  const out: Items = { items: [], details: [], invalid: new Set() };
  if (maxItems !== Infinity && countNdjsonItems(text, maxItems + 1) > maxItems) throw tooMany(maxItems);
  // Line by line, never split() at once: a million short lines would be a million strings.
  for (let i = 0, start = 0; start < text.length; i++) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const from = start;
    start = end + 1;
    // Blank lines (a trailing newline, CRLF endings) separate nothing; skip them.
    if (blank(text, from, end)) continue;
    const line = text.slice(from, end);
    if (line.trim() === '') continue; // Unicode spaces alone: blank too, as before
    const index = out.items.length;
    refuseDeepNesting(line, (path) => ({ index, path }));
    refuseOversizedPayload(line, index);
    try {
      out.items.push(JSON.parse(line));
    } catch (err) {
      throw new HttpError(400, 'invalid_json', `line ${i + 1} is not valid JSON: ${(err as Error).message}`, { line: i + 1 });
    }
    collect(line, 'single', out, index);
  }
  return out;
}
