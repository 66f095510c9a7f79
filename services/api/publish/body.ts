// POST /publish: from a request body to validated events, or to the contract's error.
import { HttpError } from '../http/errors.js';
import { MAX_DETAILS, type Event } from '../../../shared/schema.js';
import { decodeUtf8 } from './json-text.js';
import { jsonItems, ndjsonItems, type BodyKind, type Items } from './items.js';

const JSON_TYPES = ['application/json'];
const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines'];

/** What a Content-Type header ('' when absent) says a body is. */
export function bodyKind(type: string): BodyKind {
  // Only the media type decides, matched case-insensitively (RFC 9110, 8.3.1); ctx.is()
  // would also say "no" for an empty body. A charset changes nothing: JSON is UTF-8.
  const media = type.split(';')[0]!.trim().toLowerCase();
  if (JSON_TYPES.includes(media)) return 'json';
  if (NDJSON_TYPES.includes(media)) return 'ndjson';
  throw new HttpError(
    415,
    'unsupported_media_type',
    `${type ? `content type "${type}" is not accepted` : 'the request has no content type'}: send application/json or application/x-ndjson`,
  );
}

/**
 * The items of a body's bytes, read strictly (see json-text.ts); more than `maxItems` is a
 * 413 found by counting, before any item is parsed.
 */
export function itemsOf(kind: BodyKind, body: Uint8Array | string, maxItems = Infinity): Promise<Items> {
  const text = typeof body === 'string' ? body : decodeUtf8(body);
  return kind === 'ndjson' ? ndjsonItems(text, maxItems) : jsonItems(text, maxItems);
}

/** The events of a body whose every item passed, or the contract's error for it. */
export function validateBatch({ checks, details: textDetails, invalid: textInvalid }: Items, maxBatchEvents: number): Event[] {
  if (checks.count === 0) throw new HttpError(422, 'empty_batch', 'the request holds no events');
  if (checks.count > maxBatchEvents) {
    throw new HttpError(
      413,
      'batch_too_large',
      `the request holds ${checks.count} events; at most ${maxBatchEvents} are accepted at once`,
    );
  }
  if (checks.invalid.size === 0 && textInvalid.size === 0) return checks.events;
  let invalid = checks.invalid.size;
  // Events the schema passed but whose text did not.
  for (const index of textInvalid) if (!checks.invalid.has(index)) invalid++;
  const details = [...checks.details, ...textDetails].sort((a, b) => a.index - b.index).slice(0, MAX_DETAILS);
  throw new HttpError(422, 'validation_failed', `${invalid} event(s) are invalid; nothing was accepted`, { details });
}
