// From a body's text to the items it holds, before the schema sees them: the three JSON
// shapes and NDJSON lines, plus what the text says that JSON.parse's value hides (a number a
// double would change, a key given twice), each tied to the event and path it is in.
import { MAX_DETAILS, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, type ValidationDetail } from '../../../shared/schema.js';
import { HttpError } from '../http/errors.js';
import { ItemChecks } from './item-checks.js';
import { MAX_JSON_DEPTH, depthScan, scanJson, type Segment, type TextFinding, type Where } from './json-text.js';
import { Pace } from './pace.js';
import { blank, layoutOf, parseError, type Layout } from './spans.js';
import { countJsonItems, countNdjsonItems, MAX_PAYLOAD_COMMAS, oversizedPayloadAt } from './text-limits.js';

export type BodyKind = 'json' | 'ndjson';

/**
 * The items of a body, each checked by the schema as it was parsed (`checks`), and the
 * problems its text has: `invalid` holds every index with one.
 */
export type Items = { checks: ItemChecks; details: ValidationDetail[]; invalid: Set<number> };

const newItems = (): Items => ({ checks: new ItemChecks(), details: [], invalid: new Set() });

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
async function refuseDeepNesting(text: string, guess: (path: Segment[]) => { index: number; path: Segment[] }, pace: Pace): Promise<void> {
  const at = await pace.run(depthScan(text));
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

async function refuseOversizedPayload(text: string, pace: Pace, indexOffset = 0): Promise<void> {
  // A text shorter than the limit cannot hold that many commas.
  if (text.length <= MAX_PAYLOAD_COMMAS) return;
  const at = await pace.run(oversizedPayloadAt(text));
  if (at === -1) return;
  throw new HttpError(422, 'validation_failed', 'an event\'s payload is larger than the limit; nothing was accepted', {
    details: [{ index: at + indexOffset, path: 'payload', message: `must serialize to at most ${MAX_PAYLOAD_BYTES} bytes of JSON` }],
  });
}

/**
 * The batch limit, checked before anything is parsed: a body of a million `{}` would take
 * seconds of the event loop and hundreds of MB to parse, only to be refused after.
 */
function tooMany(max: number): HttpError {
  return new HttpError(413, 'batch_too_large', `the request holds more than ${max} events; at most ${max} are accepted at once`);
}

const invalidJson = (message: string) => new HttpError(400, 'invalid_json', `the body is not valid JSON: ${message}`);

/** A body whose layout is not plain, parsed in one piece. */
async function wholeItems(text: string, pace: Pace): Promise<Items> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw invalidJson((err as Error).message);
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
  const out = newItems();
  for (const item of items) {
    await pace.step();
    out.checks.add(item);
  }
  collect(text, shape, out);
  return out;
}

/** Whether the `events` body's text around its array is valid JSON (each element was parsed on its own). */
function outerParses(text: string, { open, close }: Layout): boolean {
  try {
    JSON.parse(`${text.slice(0, open)}[]${text.slice(close + 1)}`);
    return true;
  } catch {
    return false;
  }
}

/** A plain body, one event at a time, the event loop free every few milliseconds. */
async function splitItems(text: string, layout: Layout, pace: Pace): Promise<Items> {
  const { starts, ends } = layout;
  const out = newItems();
  const empty = starts.length === 1 && blank(text, starts[0]!, ends[0]!);
  for (let k = 0; k < starts.length && !empty; k++) {
    await pace.step();
    let item: unknown;
    try {
      item = JSON.parse(text.slice(starts[k], ends[k]));
    } catch {
      throw invalidJson(parseError(text, layout, k));
    }
    out.checks.add(item);
  }
  const around = layout.events ? outerParses(text, layout) : blank(text, layout.end, text.length);
  if (!around) throw invalidJson(parseError(text, layout, starts.length));
  for (let k = 0; k < out.checks.count; k++) {
    await pace.step();
    collect(text.slice(starts[k], ends[k]), 'single', out, k);
  }
  return out;
}

/**
 * The items of a JSON body: each whole-text check (count, depth, payload sizes, layout) runs
 * as a scan in slices, then the events are parsed one by one, the event loop free between.
 */
export async function jsonItems(text: string, maxItems = Infinity): Promise<Items> {
  const pace = new Pace();
  if (text.trim() === '') throw new HttpError(400, 'invalid_json', 'the body is empty');
  if (maxItems !== Infinity && (await pace.run(countJsonItems(text, maxItems + 1))) > maxItems) throw tooMany(maxItems);
  await refuseDeepNesting(text, guessJson, pace);
  await refuseOversizedPayload(text, pace);
  const layout = await pace.run(layoutOf(text));
  return layout === undefined ? wholeItems(text, pace) : splitItems(text, layout, pace);
}

export async function ndjsonItems(text: string, maxItems = Infinity): Promise<Items> {
  const pace = new Pace();
  const out = newItems();
  if (maxItems !== Infinity && (await pace.run(countNdjsonItems(text, maxItems + 1))) > maxItems) throw tooMany(maxItems);
  // Line by line, never split() at once: a million short lines would be a million strings.
  for (let i = 0, start = 0; start < text.length; i++) {
    await pace.step();
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const from = start;
    start = end + 1;
    // Blank lines (a trailing newline, CRLF endings) separate nothing; skip them.
    if (blank(text, from, end)) continue;
    const line = text.slice(from, end);
    if (line.trim() === '') continue; // Unicode spaces alone: blank too, as before
    const index = out.checks.count;
    await refuseDeepNesting(line, (path) => ({ index, path }), pace);
    await refuseOversizedPayload(line, pace, index);
    let item: unknown;
    try {
      item = JSON.parse(line);
    } catch (err) {
      throw new HttpError(400, 'invalid_json', `line ${i + 1} is not valid JSON: ${(err as Error).message}`, { line: i + 1 });
    }
    out.checks.add(item);
    collect(line, 'single', out, index);
  }
  return out;
}
