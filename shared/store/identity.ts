// The dedup key of an identity, (topic, event_id), as one integer.

/**
 * cyrb53 (bryc, public domain): a fast 53-bit string hash, exact in a JS number and an
 * SQLite INTEGER. NUL separates the parts: topics cannot contain control characters.
 * A hash is only a hint: every hit is checked against the stored identity.
 */
export function identityHash(topic: string, eventId: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  const s = topic + '\u0000' + eventId;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
