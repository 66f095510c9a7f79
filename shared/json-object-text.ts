// Whether a text is one JSON object (RFC 8259), nested at most so deep: the check a worker
// makes of a queued payload, which travels as the JSON text the API made of it. Checking the
// text is exact and allocates nothing, where parsing it would build the object only to throw
// it away (the store keeps the text). It accepts what JSON.parse accepts, a lone surrogate
// escape included, and nothing else.

const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;

/** The containers open at each level; reused, as the check runs once per queued event. */
let open = new Uint8Array(64);

function skipSpace(s: string, i: number): number {
  for (let c = s.charCodeAt(i); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = s.charCodeAt(++i));
  return i;
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/** The index just past the string starting at i (a quote), or -1. */
function stringEnd(s: string, i: number): number {
  for (i++; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === QUOTE) return i + 1;
    if (c < 0x20) return -1;
    if (c !== BACKSLASH) continue;
    const e = s.charCodeAt(++i);
    if (e === 0x75) {
      if (!(isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2)) && isHex(s.charCodeAt(i + 3)) && isHex(s.charCodeAt(i + 4)))) return -1;
      i += 4;
    } else if (!(e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74)) {
      return -1;
    }
  }
  return -1;
}

function digitsEnd(s: string, i: number): number {
  while (isDigit(s.charCodeAt(i))) i++;
  return i;
}

/** The index just past the number starting at i, or -1. */
function numberEnd(s: string, i: number): number {
  if (s.charCodeAt(i) === MINUS) i++;
  const first = s.charCodeAt(i);
  if (first === 0x30) i++;
  else if (isDigit(first)) i = digitsEnd(s, i);
  else return -1;
  if (s.charCodeAt(i) === 0x2e) {
    const from = i + 1;
    i = digitsEnd(s, from);
    if (i === from) return -1;
  }
  const e = s.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = s.charCodeAt(i);
    if (sign === 0x2b || sign === MINUS) i++;
    const from = i;
    i = digitsEnd(s, from);
    if (i === from) return -1;
  }
  return i;
}

/** The index just past the string, number or literal starting at i, or -1. */
function scalarEnd(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === QUOTE) return stringEnd(s, i);
  if (c === 0x74) return s.startsWith('true', i) ? i + 4 : -1;
  if (c === 0x66) return s.startsWith('false', i) ? i + 5 : -1;
  if (c === 0x6e) return s.startsWith('null', i) ? i + 4 : -1;
  return numberEnd(s, i);
}

/** After an object's `{` or `,`: the index of the member's value, or -1. */
function memberValueAt(s: string, i: number): number {
  if (s.charCodeAt(i) !== QUOTE) return -1;
  i = stringEnd(s, i);
  if (i === -1) return -1;
  i = skipSpace(s, i);
  return s.charCodeAt(i) === COLON ? skipSpace(s, i + 1) : -1;
}

/** Whether `s` is a JSON object whose containers nest at most `maxDepth` levels (the object itself is one). */
export function isJsonObjectText(s: string, maxDepth: number): boolean {
  if (open.length < maxDepth) open = new Uint8Array(maxDepth);
  let i = skipSpace(s, 0);
  if (s.charCodeAt(i) !== OPEN_OBJECT) return false;
  let depth = 0;
  for (;;) {
    // A value starts at i.
    const c = s.charCodeAt(i);
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth === maxDepth) return false;
      open[depth++] = c;
      i = skipSpace(s, i + 1);
      const empty = s.charCodeAt(i) === (c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY);
      if (!empty) {
        if (c === OPEN_OBJECT && (i = memberValueAt(s, i)) === -1) return false;
        continue;
      }
      depth--;
      i++;
    } else if ((i = scalarEnd(s, i)) === -1) {
      return false;
    }
    // A value ended at i: close what it ends, then the next value, or the end of the text.
    for (;;) {
      i = skipSpace(s, i);
      if (depth === 0) return i === s.length;
      const container = open[depth - 1];
      const next = s.charCodeAt(i);
      if (next === (container === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        depth--;
        i++;
        continue;
      }
      if (next !== COMMA) return false;
      i = skipSpace(s, i + 1);
      if (container === OPEN_OBJECT && (i = memberValueAt(s, i)) === -1) return false;
      break;
    }
  }
}
