// POST /publish: from a request body to validated events, or to the contract's error.
import { HttpError } from '../http/errors.js';
import { MAX_DETAILS, validateEvents, type Event, type ValidationDetail } from '../../../shared/schema.js';
import { decodeUtf8 } from './json-text.js';
import { jsonItems, ndjsonItems, type BodyKind, type Items } from './items.js';
import { Pace } from './pace.js';

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

/**
 * validateEvents over every item, with what one call would give, the event loop free every
 * few milliseconds: one event at a time, as one may take milliseconds (a payload 900 levels deep).
 */
async function validateAll(items: readonly unknown[], pace: Pace): Promise<{ events: Event[]; details: ValidationDetail[]; invalid: number }> {
  const events: Event[] = [];
  const details: ValidationDetail[] = [];
  let invalid = 0;
  for (let index = 0; index < items.length; index++) {
    await pace.step();
    const result = validateEvents([items[index]], { keepPayloadJson: false });
    if (result.ok) {
      events.push(result.events[0]!);
      continue;
    }
    invalid++;
    for (const d of result.details) if (details.length < MAX_DETAILS) details.push({ ...d, index });
  }
  return { events, details, invalid };
}

export async function validateBatch({ items, details: textDetails, invalid: textInvalid }: Items, maxBatchEvents: number): Promise<Event[]> {
  if (items.length === 0) throw new HttpError(422, 'empty_batch', 'the request holds no events');
  if (items.length > maxBatchEvents) {
    throw new HttpError(
      413,
      'batch_too_large',
      `the request holds ${items.length} events; at most ${maxBatchEvents} are accepted at once`,
    );
  }
  const pace = new Pace();
  const result = await validateAll(items, pace);
  if (result.invalid === 0 && textInvalid.size === 0) return result.events;
  let invalid = result.invalid;
  // Events the schema passed but whose text did not.
  for (const index of textInvalid) {
    await pace.step();
    if (result.invalid === 0 || validateEvents([items[index]]).ok) invalid++;
  }
  const details = [...result.details, ...textDetails].sort((a, b) => a.index - b.index).slice(0, MAX_DETAILS);
  throw new HttpError(422, 'validation_failed', `${invalid} event(s) are invalid; nothing was accepted`, { details });
}
