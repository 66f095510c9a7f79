// A large request's job data written as JSON a slice at a time (a Scan, pace.ts), as UTF-8
// bytes, so that neither building it nor handing it to Redis holds the event loop: BullMQ
// would serialise the whole data in one call, and ioredis encode the whole text to UTF-8 in
// another (each about 100 ms for 16 MiB). The bytes are exactly those of
// JSON.stringify(jobDataOf(events, reply)), which a worker reads as any job.
import { fieldsOf, type Event } from '../../../shared/schema.js';
import { SCAN_STRIDE, type Scan } from './pace.js';

/** Requests whose body weighs this much or more get their job built in slices. */
export const SLICED_JOB_BYTES = 256 * 1024;

const COMMA = Buffer.from(',');

/** Bytes copied between two chances to yield while the parts are gathered. */
const COPY_STRIDE = 1 << 20;

export function* jobBytesScan(events: readonly Event[], reply: boolean): Scan<Buffer> {
  const parts: Buffer[] = [Buffer.from('{"v":2,"events":[')];
  let total = parts[0]!.length;
  let sinceYield = 0;
  for (let i = 0; i < events.length; i++) {
    if (i > 0) parts.push(COMMA);
    const bytes = Buffer.from(JSON.stringify(fieldsOf(events[i]!)));
    parts.push(bytes);
    total += bytes.length + (i > 0 ? 1 : 0);
    sinceYield += bytes.length;
    if (sinceYield >= SCAN_STRIDE) {
      sinceYield = 0;
      yield;
    }
  }
  parts.push(Buffer.from(reply ? '],"reply":true}' : ']}'));
  total += parts[parts.length - 1]!.length;
  // Gathered into one buffer a slice at a time too: a single Buffer.concat of 16 MiB in
  // thousands of parts was, in a CPU profile, the longest piece left.
  const whole = Buffer.allocUnsafe(total);
  let at = 0;
  sinceYield = 0;
  for (const part of parts) {
    at += part.copy(whole, at);
    sinceYield += part.length;
    if (sinceYield >= COPY_STRIDE) {
      sinceYield = 0;
      yield;
    }
  }
  return whole;
}
