// Reading JSON text strictly, around JSON.parse: bytes that are not UTF-8 are refused, not
// replaced (two ids differing only in invalid bytes would become one); nesting is measured
// on the text before JSON.parse spends seconds on it; and, once the text is known to be
// valid, a scan finds what JSON.parse would silently change: numbers a double cannot hold
// and keys given twice in one object (the last would win).
import { HttpError } from '../http/errors.js';
import { finish, SCAN_STRIDE, type Scan } from './pace.js';

/** How deep a body may nest at all: far beyond any valid event, far below what costs time. */
export const MAX_JSON_DEPTH = 1000;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 bytes to text; a leading byte order mark is dropped. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new HttpError(400, 'invalid_json', 'the body is not valid UTF-8 (JSON text is UTF-8: RFC 8259, section 8.1)');
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The index of the quote that closes the string opened at `open`, or text.length. */
function stringEnd(text: string, open: number): number {
  let q = text.indexOf('"', open + 1);
  while (q !== -1) {
    let slashes = 0;
    while (text.charCodeAt(q - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
  return text.length;
}

/** Where nesting first goes deeper than `max` (an index into `text`), or -1: as a scan (see pace.ts). */
export function* depthScan(text: string, max = MAX_JSON_DEPTH, from = 0, to = text.length): Scan<number> {
  let depth = 0;
  let pause = from;
  for (let i = from; i < to; i++) {
    if (i >= pause) {
      pause = i + SCAN_STRIDE;
      yield;
    }
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = stringEnd(text, i);
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

/** Where nesting first goes deeper than `max` (an index into `text`), or -1. */
export const depthExceededAt = (text: string, max = MAX_JSON_DEPTH, from = 0, to = text.length): number => finish(depthScan(text, max, from, to));

/** The exact decimal value of a JSON number token, as sign, digits and exponent. */
function decimal(token: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(token);
  if (m === null) return `?${token}`;
  let digits = m[2]! + (m[3] ?? '');
  let exponent = Number(m[4] ?? 0) - (m[3]?.length ?? 0);
  let start = 0;
  while (start < digits.length && digits.charCodeAt(start) === 48) start++;
  let end = digits.length;
  while (end > start && digits.charCodeAt(end - 1) === 48) end--;
  // Zero has no sign worth keeping: -0 and 0 are the same JSON value.
  if (start === end) return '0';
  exponent += digits.length - end;
  digits = digits.slice(start, end);
  return `${m[1]}${digits}e${exponent}`;
}

/** Whether a double holds this number token exactly, as JSON.stringify would write it back. */
export function exactNumber(token: string): boolean {
  const n = Number(token);
  return Number.isFinite(n) && decimal(token) === decimal(String(n));
}

export type Segment = string | number;

/** Where the scan is: a live view of the path from the top of the text. */
export type Where = {
  readonly depth: number;
  at(level: number): Segment | undefined;
  path(): Segment[];
};

export type TextFinding = 'inexact_number' | 'duplicate_key';

type Frame = { array: boolean; index: number; key: string; keys: string[] | Set<string> | undefined };

function keyText(text: string, open: number, close: number): string {
  const raw = text.slice(open + 1, close);
  return raw.includes('\\') ? (JSON.parse(text.slice(open, close + 1)) as string) : raw;
}

/** Adds a key to its object's keys; false when it was there already. */
function addKey(frame: Frame, key: string): boolean {
  if (frame.keys === undefined) {
    frame.keys = [key];
    return true;
  }
  if (Array.isArray(frame.keys)) {
    if (frame.keys.includes(key)) return false;
    frame.keys.push(key);
    // A linear search is cheapest for the few keys most objects have.
    if (frame.keys.length > 8) frame.keys = new Set(frame.keys);
    return true;
  }
  if (frame.keys.has(key)) return false;
  frame.keys.add(key);
  return true;
}

/**
 * Reports every number token a double cannot hold exactly (9007199254740993,
 * 12345678901234567890, 1e400) and every key repeated within its object. `text` must be
 * valid JSON (JSON.parse accepted it), or a prefix of it: the scan does not check the
 * grammar again. Returns the path where the scan stopped.
 */
export function scanJson(text: string, report: (finding: TextFinding, where: Where, token: string) => void, from = 0, to = text.length): Segment[] {
  const stack: Frame[] = [];
  const where: Where = {
    get depth() {
      return stack.length;
    },
    at: (level) => {
      const f = stack[level];
      return f === undefined ? undefined : f.array ? f.index : f.key;
    },
    path: () => stack.map((f) => (f.array ? f.index : f.key)),
  };
  let expectKey = false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const close = stringEnd(text, i);
      const top = stack[stack.length - 1];
      if (expectKey && top !== undefined) {
        top.key = keyText(text, i, close);
        if (!addKey(top, top.key)) report('duplicate_key', where, top.key);
        expectKey = false;
      }
      i = close;
    } else if (c === 0x7b) {
      stack.push({ array: false, index: 0, key: '', keys: undefined });
      expectKey = true;
    } else if (c === 0x5b) {
      stack.push({ array: true, index: 0, key: '', keys: undefined });
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
    } else if (c === 0x2c) {
      const top = stack[stack.length - 1]!;
      if (top.array) top.index++;
      else expectKey = true;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      let plain = true;
      for (; j < to; j++) {
        const d = text.charCodeAt(j);
        if (d >= 0x30 && d <= 0x39) continue;
        if (d === 0x2e) continue;
        if (d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) {
          plain = false;
          continue;
        }
        break;
      }
      // Up to 15 significant digits and no exponent: every such decimal is a double exactly
      // as written (DBL_DIG). Only longer tokens, or exponents, need the exact comparison.
      if (!plain || j - i > 15) {
        const token = text.slice(i, j);
        if (!exactNumber(token)) report('inexact_number', where, token);
      }
      i = j - 1;
    }
  }
  return where.path();
}
