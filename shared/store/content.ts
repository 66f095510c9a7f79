// When is a copy a conflict? When its content differs from the stored first copy: its
// source, its payload as a JSON value (key order and whitespace do not matter), or its
// timestamp as an instant (`...T07:00:00+07:00` is `...T00:00:00Z`).
//
// Compared lazily: only a copy is ever compared, against the stored row it already reads
// to confirm its identity, so a new event (most of the traffic) pays nothing. The cheap
// test comes first: the same text is the same content.

export type Content = { source: string; timestamp: string; payload: string };

/** Same instant: the local time plus the offset, to the nanosecond (fractions have at most 9 digits). */
export function instantKey(timestamp: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}:?\d{2})?$/.exec(timestamp);
  if (!m) return timestamp;
  const [, date, hm, sec = '00', fraction = '', zone = 'Z'] = m;
  let offset = zone.toUpperCase() === 'Z' ? '+00:00' : zone;
  if (offset.length === 5) offset = `${offset.slice(0, 3)}:${offset.slice(3)}`;
  const ms = Date.parse(`${date}T${hm}:${sec}${offset}`);
  return `${ms / 1000}.${fraction.replace(/0+$/, '')}`;
}

/** The JSON value with object keys sorted at every level. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function sameJsonValue(a: string, b: string): boolean {
  if (a === b) return true;
  return canonical(JSON.parse(a)) === canonical(JSON.parse(b));
}

export function sameContent(copy: Content, stored: Content): boolean {
  return (
    copy.source === stored.source &&
    (copy.timestamp === stored.timestamp || instantKey(copy.timestamp) === instantKey(stored.timestamp)) &&
    sameJsonValue(copy.payload, stored.payload)
  );
}
