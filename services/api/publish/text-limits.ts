// Limits read off a body's text before it is parsed: how many events it holds, and whether
// an event's payload is surely too large. Each is a scan that stops once it knows, so a body
// past a limit costs a count, not the seconds and hundreds of MB a parse would.
import { MAX_PAYLOAD_BYTES } from '../../../shared/schema.js';
import { SCAN_STRIDE, type Scan } from './pace.js';
import { blank, isSpace, stringEnd } from './spans.js';

/**
 * How many events a JSON body holds, counted on its text without parsing it, up to
 * `stop` (counting ends there): the elements of a top-level array, or of the top-level
 * object's `events` array. Malformed text gives some count; JSON.parse says what is wrong.
 */
export function* countJsonItems(text: string, stop: number): Scan<number> {
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
  let pause = 0;
  for (; i < text.length; i++) {
    if (i >= pause) {
      pause = i + SCAN_STRIDE;
      yield;
    }
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
 * A payload is refused from its text alone past four times the limit: a payload just over
 * the limit costs milliseconds to parse, and parsed, the 422 lists every invalid event of the
 * body, not only the first one found too large.
 */
export const EARLY_PAYLOAD_BYTES = 4 * MAX_PAYLOAD_BYTES;

/**
 * The backslashes of a text, asked for left to right: each search resumes where the last
 * one ended, so that asking once per string stays linear in the text, not in its strings.
 */
function backslashes(text: string): (from: number) => number {
  let next = -2;
  return (from) => {
    if (next !== -1 && next < from) next = text.indexOf('\\', from);
    return next;
  };
}

/**
 * The fewest bytes the string text[open, end) (quotes included) serializes to: every
 * character and every escape is at least one byte (`\u0041` is `A`), and the quotes stay.
 */
function leastStringBytes(text: string, open: number, end: number, backslashAt: (from: number) => number): number {
  // No escape is longer than six characters: a string this long is too large, its escapes uncounted.
  if (end - open > 6 * EARLY_PAYLOAD_BYTES) return Math.floor((end - open) / 6);
  let bytes = end - open;
  for (let b = backslashAt(open); b !== -1 && b < end - 1; ) {
    const escape = text.charCodeAt(b + 1) === 0x75 ? 6 : 2;
    bytes -= escape - 1;
    b = backslashAt(b + escape);
  }
  return bytes;
}

/** Characters that may only be part of a number outside strings: a number, however long, serializes to at least one. */
const isNumberChar = (c: number) => (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2b || c === 0x2d || c === 0x65 || c === 0x45;

/** Where a payload's scan stopped, how deep it stood there (1 inside its own brackets, 0 past them), and whether the payload is surely too large. */
type PayloadScan = { at: number; depth: number; tooLarge: boolean; pause: number };

/**
 * Measures the payload whose bracket is text[open]: its commas, and (an object) its bytes
 * counted as they will serialize at the least (whitespace and number digits not counted,
 * escapes as one byte). Stops at its closing bracket, or at the character that shows it
 * too large. `pause` is where the scan yields next, carried on from the caller's.
 */
function* measurePayload(text: string, open: number, pause: number, backslashAt: (from: number) => number): Scan<PayloadScan> {
  // An array is refused as not an object, whatever its size: only its commas are counted, as before.
  const isObject = text.charCodeAt(open) === 0x7b;
  let depth = 1;
  let commas = 0;
  let bytes = 1;
  for (let i = open + 1; i < text.length; i++) {
    if (i >= pause) {
      pause = i + SCAN_STRIDE;
      yield;
    }
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i);
      bytes += leastStringBytes(text, i, end, backslashAt);
      i = end - 1;
      continue;
    }
    if (!isSpace(c) && !isNumberChar(c)) bytes++;
    if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c) commas++;
    // The closing bracket counts too, as it serializes too.
    if (commas > MAX_PAYLOAD_COMMAS || (isObject && bytes > EARLY_PAYLOAD_BYTES)) return { at: i, depth, tooLarge: true, pause };
    if (depth === 0) return { at: i, depth, tooLarge: false, pause };
  }
  return { at: text.length, depth, tooLarge: false, pause };
}

/**
 * The index of the first event whose `payload` text is surely too large (measurePayload),
 * or -1. Such an event is invalid whatever else it holds, found by a scan that stops
 * there, before JSON.parse spends seconds on a million keys or 15 MB of one string. The
 * events are where the body's shape puts them: a bare array's elements, the top-level
 * object's `events` elements, or the body itself.
 */
export function* oversizedPayloadAt(text: string): Scan<number> {
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
  const backslashAt = backslashes(text);
  // A single event's payload too large counts only if the body has no `events` array after all.
  let singleOversized = false;
  let pause = 0;
  for (; i < text.length; i++) {
    if (i >= pause) {
      pause = i + SCAN_STRIDE;
      yield;
    }
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i);
      // Only the levels down to an event's fields are asked about: deeper keys are not kept.
      if (depth <= 3) keys[depth] = text.slice(i + 1, end - 1);
      i = end - 1;
    } else if (c === 0x5b || c === 0x7b) {
      keys[++depth] = '';
      if (top === 0x7b && depth === 2 && c === 0x5b && keys[1] === 'events' && itemDepth === 1) {
        itemDepth = 3;
        index = 0;
      }
      if (depth === itemDepth + 1 && keys[itemDepth] === 'payload' && !(itemDepth === 1 && singleOversized)) {
        const payload = yield* measurePayload(text, i, pause, backslashAt);
        ({ at: i, pause } = payload);
        depth += payload.depth - 1;
        if (payload.tooLarge && itemDepth > 1) return index;
        if (payload.tooLarge) singleOversized = true;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c && itemDepth > 1 && depth === itemDepth - 1) index++;
  }
  return itemDepth === 1 && singleOversized ? 0 : -1;
}

/** Non-blank NDJSON lines, counted up to `stop`. */
export function* countNdjsonItems(text: string, stop: number): Scan<number> {
  let count = 0;
  let pause = 0;
  for (let start = 0; start < text.length; ) {
    if (start >= pause) {
      pause = start + SCAN_STRIDE;
      yield;
    }
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (!blank(text, start, end) && text.slice(start, end).trim() !== '' && ++count >= stop) return count;
    start = end + 1;
  }
  return count;
}

