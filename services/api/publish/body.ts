// POST /publish: from a request body to validated events, or to the contract's error.
import type { Context } from 'koa';
import bodyParser from 'koa-bodyparser';
import { HttpError } from '../http/errors.js';
import { validateEvents, type Event } from '../../../shared/schema.js';

const JSON_TYPES = ['application/json'];
const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines'];

type BodyKind = 'json' | 'ndjson';

export function bodyKind(ctx: Context): BodyKind {
  const type = ctx.get('content-type');
  // Only the media type decides; ctx.is() would also say "no" for an empty body.
  const media = type.split(';')[0]!.trim().toLowerCase();
  if (JSON_TYPES.includes(media)) return 'json';
  if (NDJSON_TYPES.includes(media)) return 'ndjson';
  throw new HttpError(
    415,
    'unsupported_media_type',
    `${type ? `content type "${type}" is not accepted` : 'the request has no content type'}: send application/json or application/x-ndjson`,
  );
}

/** koa-bodyparser for both kinds, with the body limit and errors in the contract's terms. */
export function createBodyParser(maxBodyBytes: number) {
  const parse = bodyParser({
    enableTypes: ['json', 'text'],
    extendTypes: { text: NDJSON_TYPES },
    jsonLimit: maxBodyBytes,
    textLimit: maxBodyBytes,
    // Accept any JSON value: a body that is valid JSON but not an event is a 422, not a 400.
    strict: false,
    // JSON.parse makes "__proto__" an own property, and payloads are stored, never merged
    // into other objects: the key is harmless data here.
    onProtoPoisoning: 'ignore',
  } as unknown as bodyParser.Options);
  return async (ctx: Context, next: () => Promise<unknown>) => {
    try {
      await parse(ctx, () => Promise.resolve());
    } catch (err) {
      const e = err as { status?: number; type?: string; message?: string };
      if (e.status === 413) {
        throw new HttpError(413, 'payload_too_large', `the body is larger than ${maxBodyBytes} bytes`);
      }
      if (e.status === 415) throw new HttpError(415, 'unsupported_media_type', e.message ?? 'unsupported encoding');
      // zlib's errors carry no HTTP status: a body that is not what its Content-Encoding
      // says is the client's mistake, not a 500.
      const contentEncoding = ctx.get('content-encoding');
      if (e.status === undefined && contentEncoding !== '' && contentEncoding !== 'identity') {
        throw new HttpError(400, 'invalid_encoding', `the body is not valid ${contentEncoding} data: ${e.message ?? 'decoding failed'}`);
      }
      if (e.status === 400 && e.type !== 'request.aborted') {
        throw new HttpError(400, 'invalid_json', `the body is not valid JSON: ${e.message ?? 'parse error'}`);
      }
      throw err;
    }
    await next();
  };
}

/** The events a body holds, before validation. */
export function itemsOf(kind: BodyKind, body: unknown): unknown[] {
  if (kind === 'ndjson') return parseNdjson(typeof body === 'string' ? body : '');
  if (body === '' || body === undefined) throw new HttpError(400, 'invalid_json', 'the body is empty');
  if (Array.isArray(body)) return body;
  if (typeof body === 'object' && body !== null && Array.isArray((body as { events?: unknown }).events)) {
    return (body as { events: unknown[] }).events;
  }
  return [body];
}

function parseNdjson(text: string): unknown[] {
  const items: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    // Blank lines (a trailing newline, CRLF endings) separate nothing; skip them.
    if (line.trim() === '') continue;
    try {
      items.push(JSON.parse(line));
    } catch (err) {
      throw new HttpError(400, 'invalid_json', `line ${i + 1} is not valid JSON: ${(err as Error).message}`, {
        line: i + 1,
      });
    }
  }
  return items;
}

export function validateBatch(items: unknown[], maxBatchEvents: number): Event[] {
  if (items.length === 0) throw new HttpError(422, 'empty_batch', 'the request holds no events');
  if (items.length > maxBatchEvents) {
    throw new HttpError(
      413,
      'batch_too_large',
      `the request holds ${items.length} events; at most ${maxBatchEvents} are accepted at once`,
    );
  }
  const result = validateEvents(items);
  if (!result.ok) {
    throw new HttpError(422, 'validation_failed', `${new Set(result.details.map((d) => d.index)).size} event(s) are invalid; nothing was accepted`, {
      details: result.details,
    });
  }
  return result.events;
}
