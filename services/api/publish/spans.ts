// Where the events of a JSON body are in its text, so that each is parsed on its own, with
// the event loop free between them, instead of the whole body in one JSON.parse. Only
// bodies whose layout is plain (a top-level array, or a top-level object with one `events`
// key, written without escapes, holding an array) are split; anything else is parsed whole.
import { SCAN_STRIDE, type Scan } from './pace.js';

const QUOTE = 0x22;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

export const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The index just past the string whose opening quote is at `open` (text.length if unclosed). */
export function stringEnd(text: string, open: number): number {
  for (let q = open; ; ) {
    q = text.indexOf('"', q + 1);
    if (q === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
  }
}

/**
 * The events array's brackets (`open`, `close`) and, for each element, the text between
 * its separators: [starts[i], ends[i]). `end` is just past the top-level value.
 */
export type Layout = { events: boolean; open: number; close: number; starts: number[]; ends: number[]; end: number };

/** The layout of a body, or undefined when it is not plain or not closed (then it is parsed whole). */
export function* layoutOf(text: string): Scan<Layout | undefined> {
  let i = 0;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  const top = text.charCodeAt(i);
  if (top !== OPEN_ARRAY && top !== OPEN_OBJECT) return undefined;
  const events = top === OPEN_OBJECT;
  const target = events ? 2 : 1;
  const layout: Layout = { events, open: -1, close: -1, starts: [], ends: [], end: -1 };
  let depth = 0;
  let expectKey = false;
  let key = '';
  let keys = 0;
  let pause = 0;
  for (; i < text.length; i++) {
    if (i >= pause) {
      pause = i + SCAN_STRIDE;
      yield;
    }
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (events && depth === 1 && expectKey) {
        key = text.slice(i + 1, end - 1);
        // An escaped key may spell `events`; and two would leave which one is meant to the parse.
        if (key.includes('\\') || (key === 'events' && ++keys > 1)) return undefined;
        expectKey = false;
      }
      i = end - 1;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      depth++;
      if (depth === 1 && events) expectKey = true;
      if (depth === target && c === OPEN_ARRAY && layout.open === -1 && (!events || key === 'events')) {
        layout.open = i;
        layout.starts.push(i + 1);
      }
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (depth === target && layout.open !== -1 && layout.close === -1) {
        if (c !== CLOSE_ARRAY) return undefined;
        layout.close = i;
        layout.ends.push(i);
      }
      if (--depth === 0) {
        layout.end = i + 1;
        return layout.open === -1 ? undefined : layout;
      }
    } else if (c === COMMA) {
      if (depth === target && layout.open !== -1 && layout.close === -1) {
        layout.ends.push(i);
        layout.starts.push(i + 1);
      } else if (events && depth === 1) expectKey = true;
    }
  }
  return undefined;
}

/** Whether text[start, end) holds anything but JSON whitespace. */
export function blank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isSpace(text.charCodeAt(i))) return false;
  return true;
}

/** Elements of `layout` left as written before the place an error is looked for: its message quotes the text around it. */
const CONTEXT = 64;

/**
 * JSON.parse's message for a body already known to be malformed at or after element `k`
 * (k = the count of elements: after the last one), as JSON.parse(text) would give it, but
 * without parsing the elements before `k` again: each is replaced by `0` and spaces, a value
 * the parser crosses in the same state, keeping every position and the quoted context.
 */
export function parseError(text: string, layout: Layout, k: number): string {
  const { starts, ends } = layout;
  const from = k < starts.length ? starts[k]! : layout.close;
  // The first element stays as written: an error just before it (`{"events":x[`) quotes its start.
  const pieces: string[] = [];
  let j = 1;
  for (; j < k && ends[j]! + CONTEXT < from; j++) pieces.push('0'.padEnd(ends[j]! - starts[j]!, ' '), ',');
  const padded = pieces.length === 0 ? [] : [text.slice(0, starts[1]) + pieces.join('') + text.slice(starts[j])];
  for (const candidate of [...padded, text]) {
    try {
      JSON.parse(candidate);
    } catch (err) {
      return (err as Error).message;
    }
  }
  throw new Error('parseError: the body parsed after all');
}
