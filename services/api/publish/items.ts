// From a body's text to the items it holds, before the schema sees them: the three JSON
// shapes and NDJSON lines, plus what the text says that JSON.parse's value hides (a number a
// double would change, a key given twice), each tied to the event and path it is in.
import { MAX_DETAILS, MAX_PAYLOAD_DEPTH, type ValidationDetail } from '../../../shared/schema.js';
import { HttpError } from '../http/errors.js';
import { MAX_JSON_DEPTH, depthExceededAt, scanJson, type Segment, type TextFinding, type Where } from './json-text.js';

export type BodyKind = 'json' | 'ndjson';

/** The items of a body, and the problems its text has: `invalid` holds every index with one. */
export type Items = { items: unknown[]; details: ValidationDetail[]; invalid: Set<number> };

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
function refuseDeepNesting(text: string, guess: (path: Segment[]) => { index: number; path: Segment[] }): void {
  const at = depthExceededAt(text);
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

export function jsonItems(text: string): Items {
  if (text.trim() === '') throw new HttpError(400, 'invalid_json', 'the body is empty');
  refuseDeepNesting(text, guessJson);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'invalid_json', `the body is not valid JSON: ${(err as Error).message}`);
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
  const out: Items = { items, details: [], invalid: new Set() };
  collect(text, shape, out);
  return out;
}

export function ndjsonItems(text: string): Items {
  const out: Items = { items: [], details: [], invalid: new Set() };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    // Blank lines (a trailing newline, CRLF endings) separate nothing; skip them.
    if (line.trim() === '') continue;
    const index = out.items.length;
    refuseDeepNesting(line, (path) => ({ index, path }));
    try {
      out.items.push(JSON.parse(line));
    } catch (err) {
      throw new HttpError(400, 'invalid_json', `line ${i + 1} is not valid JSON: ${(err as Error).message}`, { line: i + 1 });
    }
    collect(line, 'single', out, index);
  }
  return out;
}
