// A page of events as SSE, encoded once: one buffer with every message, and where each one
// starts. The fan-out writes slices of it to every subscriber (a socket keeps a reference
// to a buffer, not a copy), and keeps the last few MB of pages (Recent) so that a
// subscriber resuming near the head (a reconnect after it was cut loose or after a network
// blip, a dashboard tab coming back) catches up from memory: no store read and no
// serialization, however many resume at once. Buffers rather than strings: the pages live
// long enough to reach V8's old generation, and strings there would pile up as garbage
// between major collections, growing the heap with the traffic.
import type { EventJsonPage } from '../../../shared/store/event-json.js';
import { sseMessage } from './sse.js';

/** A page's topics: undefined for every topic. */
export type Covers = ReadonlySet<string> | undefined;

export const covers = (c: Covers, topic: string | undefined): boolean => c === undefined || (topic !== undefined && c.has(topic));

export type EncodedPage = {
  /** Every event of the covered topics with after < seq <= through is in the page. */
  after: number;
  through: number;
  covers: Covers;
  seqs: number[];
  topics: string[];
  /** Message i is buf[offsets[i], offsets[i + 1]). */
  offsets: number[];
  buf: Buffer;
};

export function encodePage(page: EventJsonPage, after: number, covered: Covers): EncodedPage {
  const { events } = page;
  const messages = events.map(sseMessage);
  const offsets = [0];
  for (const m of messages) offsets.push(offsets[offsets.length - 1]! + Buffer.byteLength(m));
  return {
    after,
    through: page.through,
    covers: covered,
    seqs: events.map((e) => e.seq),
    topics: events.map((e) => e.topic),
    offsets,
    buf: Buffer.from(messages.join('')),
  };
}

/** Index of the first element of a sorted array greater than `x`. */
function firstAbove(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * The messages of `page` after seq `after`, of `topic` if given (the page must cover it),
 * up to about `maxBytes`; null if none. `through` is how far that reaches: the page's end
 * once the rest of it is taken, else the last seq looked at (other topics' included).
 */
export function slice(page: EncodedPage, after: number, topic: string | undefined, maxBytes: number): { chunk: Buffer | null; through: number } {
  const from = firstAbove(page.seqs, after);
  const n = page.seqs.length;
  const reach = (i: number) => (i >= n ? Math.max(after, page.through) : page.seqs[i - 1]!);
  if (from >= n) return { chunk: null, through: reach(n) };
  if (topic === undefined) {
    let to = from + 1;
    while (to < n && page.offsets[to]! - page.offsets[from]! < maxBytes) to++;
    return { chunk: page.buf.subarray(page.offsets[from], page.offsets[to]), through: reach(to) };
  }
  const parts: Buffer[] = [];
  let bytes = 0;
  let i = from;
  for (; i < n && bytes < maxBytes; i++) {
    if (page.topics[i] !== topic) continue;
    parts.push(page.buf.subarray(page.offsets[i], page.offsets[i + 1]));
    bytes += parts[parts.length - 1]!.length;
  }
  return { chunk: parts.length === 0 ? null : parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes), through: reach(i) };
}

export type Recent = {
  /** Every event with `from < seq <= to` is held; `to` is the fan-out's live cursor. */
  readonly from: number;
  readonly to: number;
  /** A page the fan-out just sent, continuing from `to`; the oldest pages go past the cap. */
  append(page: EncodedPage): void;
  /** Forgets everything: the live cursor starts again at `at`. */
  reset(at: number): void;
  /**
   * Messages after `cursor` (of `topic`, if given; about `maxBytes`, from one page), and
   * the cursor that covers them (past events of other topics too). Undefined when
   * `cursor` is older than what is held, or the pages from it on were read for other
   * topics: the store has it.
   */
  take(cursor: number, topic: string | undefined, maxBytes: number): { chunk: Buffer | null; cursor: number } | undefined;
};

export function createRecent(capBytes: number): Recent {
  let pages: EncodedPage[] = [];
  let bytes = 0;
  let from = 0;
  let to = 0;
  const reset = (at: number) => {
    pages = [];
    bytes = 0;
    from = to = at;
  };

  return {
    get from() {
      return from;
    },
    get to() {
      return to;
    },
    append(page) {
      // Not from where the last one ended (never expected): what is held starts again here.
      if (page.after !== to) reset(page.after);
      if (page.through <= to) return;
      const last = pages[pages.length - 1];
      // A read that found nothing only moves the end, when the last page covers the same topics.
      if (page.seqs.length === 0 && last !== undefined && last.covers === page.covers) {
        last.through = to = page.through;
        return;
      }
      pages.push(page);
      bytes += page.buf.length;
      to = page.through;
      while (bytes > capBytes && pages.length > 1) {
        const old = pages.shift()!;
        bytes -= old.buf.length;
        from = old.through;
      }
    },
    reset,
    take(cursor, topic, maxBytes) {
      if (cursor < from) return undefined;
      for (const page of pages) {
        if (page.through <= cursor) continue;
        if (!covers(page.covers, topic)) return undefined;
        const { chunk, through } = slice(page, cursor, topic, maxBytes);
        return { chunk, cursor: through };
      }
      return { chunk: null, cursor: Math.max(cursor, to) };
    },
  };
}
