// The dedup key of an identity, (topic, event_id), as one integer (53 bits: exact in a JS
// number and an SQLite INTEGER). A key is only a hint: every hit is checked against the
// stored identity, and identities that share a key are settled by their full text.
//
// Producers mostly send ids that grow at their end (counters, sequence-suffixed ids): the
// key keeps that order so that new ids land next to each other in the B-tree, and a commit
// touches a few pages instead of one per id. The key is a hash of the topic and the id
// without its last TAIL_CHARS characters (high bits: spreads unrelated prefixes), then those
// last characters in an order-preserving code (low bits). Ids of one prefix share a run of
// keys in id order; ids with nothing in common (UUIDs) are as spread as a plain hash.

const TAIL_CHARS = 4;
const CHAR_BITS = 6;
const TAIL_BITS = TAIL_CHARS * CHAR_BITS;
const HASH_BITS = 53 - TAIL_BITS;

/**
 * Each character's code for the tail: non-decreasing in the character (so a tail sorts as
 * its text does), distinct for 0-9, A-Z, a-z, and 0 reserved for "no character" (ids
 * shorter than the tail). Other characters share a code with a neighbour: a shared key,
 * settled exactly like any other.
 */
const CHAR_CODE = (() => {
  const codes = new Uint8Array(128);
  let code = 1;
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    if (/[0-9A-Za-z]/.test(ch)) codes[c] = ++code;
    else codes[c] = c < 0x30 ? 1 : code;
  }
  return codes;
})();
const charCode = (c: number) => (c < 128 ? CHAR_CODE[c]! : 63);

/**
 * cyrb53 (bryc, public domain), over topic, NUL, and the id's first `idChars` characters:
 * a fast well-mixed hash without building the string. Topics cannot contain control
 * characters, so NUL separates the parts.
 */
function cyrb53(topic: string, eventId: string, idChars: number): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  const mix = (ch: number) => {
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  };
  for (let i = 0; i < topic.length; i++) mix(topic.charCodeAt(i));
  mix(0);
  for (let i = 0; i < idChars; i++) mix(eventId.charCodeAt(i));
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

export function dedupKey(topic: string, eventId: string): number {
  const prefix = Math.max(0, eventId.length - TAIL_CHARS);
  let tail = 0;
  for (let i = 0; i < TAIL_CHARS; i++) {
    const at = prefix + i;
    tail = tail * (1 << CHAR_BITS) + (at < eventId.length ? charCode(eventId.charCodeAt(at)) : 0);
  }
  const high = Math.floor(cyrb53(topic, eventId, prefix) / 2 ** (53 - HASH_BITS));
  return high * 2 ** TAIL_BITS + tail;
}
