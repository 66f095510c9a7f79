// From an ExportLogsServiceRequest in OTLP/JSON to one event per log record, as the
// contract's table says (protobuf bodies take the direct path of otlp-decode.ts to the same
// events).
//
// A record without `log.record.uid` is identified by a digest of everything it carries,
// with its resource and scope, each encoded canonically (attribute keys sorted, values
// tagged with their type, times as decimal nanoseconds, ids as hex): an exporter's retry
// re-sends the same record, so it digests the same, whichever encoding or batch it comes
// in; two records that differ anywhere (a time, an attribute, the service instance) never
// share an identity. Only two records identical in every field, times to the nanosecond
// included, are one event.
import { createHash, hash } from 'node:crypto';
import { HttpError } from '../http/errors.js';

/** What a log record becomes before the schema sees it: an event, unvalidated. */
export type MappedRecord = { topic: unknown; event_id: unknown; timestamp: string; source: unknown; payload: Record<string, unknown> };

const undecodable = (message: string) => new HttpError(400, 'invalid_otlp', `the body is not an OTLP ExportLogsServiceRequest: ${message}`);

function list(value: unknown, what: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw undecodable(`${what} must be an array`);
  return value;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw undecodable(`${what} must be an object`);
  return value as Record<string, unknown>;
}

/** A 64-bit integer given as a decimal string or a number. */
function int64(value: unknown, what: string): bigint {
  if (value === undefined || value === null || value === '') return 0n;
  if ((typeof value === 'string' && /^-?\d+$/.test(value)) || (typeof value === 'number' && Number.isInteger(value))) return BigInt(value);
  throw undecodable(`${what} must be an integer`);
}

function text(value: unknown, what: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw undecodable(`${what} must be a string`);
  return value;
}

/** An AnyValue as plain JSON: int64 as a number when exact, else its decimal string; bytes as base64. */
function plain(value: unknown, what = 'value'): unknown {
  const v = object(value, what);
  if ('stringValue' in v) return text(v.stringValue, what);
  if ('boolValue' in v) return v.boolValue === true;
  if ('intValue' in v) {
    const n = int64(v.intValue, what);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
  }
  if ('doubleValue' in v) {
    const d = Number(v.doubleValue);
    // JSON has no NaN or infinities: they travel as proto3 JSON spells them.
    return Number.isFinite(d) ? d : String(d);
  }
  if ('arrayValue' in v) return list(object(v.arrayValue, what).values, what).map((x) => plain(x, what));
  if ('kvlistValue' in v) return attributes(object(v.kvlistValue, what).values, what);
  if ('bytesValue' in v) return text(v.bytesValue, what);
  return null;
}

/** KeyValues as a JSON object (a key given twice: the last wins, as the spec leaves it undefined). */
function attributes(kvs: unknown, what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list(kvs, what)) {
    const { key, value } = object(kv, what);
    const name = text(key, `${what} key`);
    const v = plain(value, what);
    // An own property even for "__proto__", which an assignment would not make.
    if (name === '__proto__') Object.defineProperty(out, name, { value: v, enumerable: true, writable: true, configurable: true });
    else out[name] = v;
  }
  return out;
}

/** The digest's view of an AnyValue: tagged with its type, so 1, 1.0, "1" and true differ. */
function canonical(value: unknown): unknown {
  const v = object(value, 'value');
  if ('stringValue' in v) return ['s', v.stringValue ?? ''];
  if ('boolValue' in v) return ['b', v.boolValue === true];
  if ('intValue' in v) return ['i', int64(v.intValue, 'value').toString()];
  if ('doubleValue' in v) return ['d', String(Number(v.doubleValue))];
  if ('arrayValue' in v) return ['a', list(object(v.arrayValue, 'value').values, 'value').map(canonical)];
  if ('kvlistValue' in v) return ['k', canonicalKvs(object(v.kvlistValue, 'value').values)];
  if ('bytesValue' in v) return ['y', Buffer.from(text(v.bytesValue, 'value'), 'base64').toString('base64')];
  return null;
}

function canonicalKvs(kvs: unknown): unknown[] {
  return list(kvs, 'attributes')
    .map((kv) => {
      const { key, value } = object(kv, 'attribute');
      return [text(key, 'attribute key'), canonical(value)] as [string, unknown];
    })
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** A trace or span id (hex in OTLP/JSON) as lowercase hex. */
function id(value: unknown, what: string): string | null {
  const raw = text(value, what);
  if (raw === '') return null;
  if (!/^[0-9a-fA-F]*$/.test(raw)) throw undecodable(`${what} must be hex`);
  return raw.toLowerCase();
}

const NANOS_PER_SECOND = 1_000_000_000n;

/** The last second written as text, and its text: the records of a request mostly fall in a few seconds. */
const lastSecond = { second: -1n, text: '' };

/** Nanoseconds since the epoch as ISO 8601 UTC with all nine digits, or undefined past what a date can say. */
export function isoFromNanos(nanos: bigint): string | undefined {
  if (nanos < 0n) {
    const date = new Date(Number(nanos / 1_000_000n));
    return Number.isNaN(date.getTime()) ? undefined : `${date.toISOString().slice(0, 19)}.${(nanos % NANOS_PER_SECOND).toString().padStart(9, '0')}Z`;
  }
  const second = nanos / NANOS_PER_SECOND;
  if (second !== lastSecond.second) {
    const date = new Date(Number(second) * 1000);
    if (Number.isNaN(date.getTime()) || date.getUTCFullYear() > 9999) return undefined;
    lastSecond.second = second;
    lastSecond.text = date.toISOString().slice(0, 19);
  }
  return `${lastSecond.text}.${(nanos - second * NANOS_PER_SECOND).toString().padStart(9, '0')}Z`;
}

/** A resource attribute's text, for the topic and the source: a string as it is, another value as JSON. */
export function attributeText(attrs: Record<string, unknown>, key: string): string | undefined {
  if (!Object.prototype.hasOwnProperty.call(attrs, key)) return undefined;
  const value = attrs[key];
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** What every record of one resource shares: topic, source, attributes, and its part of the identity's text. */
type ResourcePart = { topic: string; source: string; attributes: Record<string, unknown>; key: string };

function resourcePart(resourceLogs: Record<string, unknown>): ResourcePart {
  const resource = object(resourceLogs.resource, 'resource');
  const resourceAttrs = attributes(resource.attributes, 'resource.attributes');
  const resourceKey = {
    attributes: canonicalKvs(resource.attributes),
    dropped: Number(resource.droppedAttributesCount ?? 0),
    schemaUrl: text(resourceLogs.schemaUrl, 'schemaUrl'),
  };
  const serviceName = attributeText(resourceAttrs, 'service.name');
  return {
    topic: serviceName ?? 'unknown_service',
    source: attributeText(resourceAttrs, 'service.instance.id') ?? attributeText(resourceAttrs, 'host.name') ?? serviceName ?? 'otlp',
    attributes: resourceAttrs,
    key: JSON.stringify(resourceKey),
  };
}

/** What every record of one scope shares: the scope as the payload shows it, and the digest of its records' identities. */
type ScopePart = { json: { name: string; version: string; attributes: Record<string, unknown> }; digest: (record: string) => string };

function scopePart(scopeLogs: Record<string, unknown>, resourceKey: string): ScopePart {
  const scope = object(scopeLogs.scope, 'scope');
  const json = {
    name: text(scope.name, 'scope.name'),
    version: text(scope.version, 'scope.version'),
    attributes: attributes(scope.attributes, 'scope.attributes'),
  };
  const scopeKey = {
    name: json.name,
    version: json.version,
    attributes: canonicalKvs(scope.attributes),
    dropped: Number(scope.droppedAttributesCount ?? 0),
    schemaUrl: text(scopeLogs.schemaUrl, 'scopeLogs.schemaUrl'),
  };
  return { json, digest: recordDigester(`{"resource":${resourceKey},"scope":${JSON.stringify(scopeKey)},"record":`) };
}

/** The fields of a record that the payload shows too, read once for both. */
type RecordFields = { time: bigint; observed: bigint; severityNumber: number; severityText: string; traceId: string | null; spanId: string | null };

/** The digest's view of a record without `log.record.uid`: everything it carries, canonically. */
function recordKey(record: Record<string, unknown>, f: RecordFields): string {
  return JSON.stringify({
    time: f.time.toString(),
    observed: f.observed.toString(),
    severityNumber: f.severityNumber,
    severityText: f.severityText,
    body: record.body === undefined || record.body === null ? null : canonical(record.body),
    attributes: canonicalKvs(record.attributes),
    dropped: Number(record.droppedAttributesCount ?? 0),
    flags: Number(record.flags ?? 0),
    traceId: f.traceId,
    spanId: f.spanId,
    eventName: text(record.eventName, 'eventName'),
  });
}

function recordEvent(record: Record<string, unknown>, resource: ResourcePart, scope: ScopePart, receivedAt: string): MappedRecord {
  const time = int64(record.timeUnixNano, 'timeUnixNano');
  const observed = int64(record.observedTimeUnixNano, 'observedTimeUnixNano');
  const attrs = attributes(record.attributes, 'attributes');
  const traceId = id(record.traceId, 'traceId');
  const spanId = id(record.spanId, 'spanId');
  const severityNumber = Number(int64(record.severityNumber, 'severityNumber'));
  const severityText = text(record.severityText, 'severityText');
  const body = record.body === undefined || record.body === null ? null : plain(record.body, 'body');
  const uid = attributeText(attrs, 'log.record.uid');
  const eventId = uid ?? scope.digest(recordKey(record, { time, observed, severityNumber, severityText, traceId, spanId }));
  const nanos = time !== 0n ? time : observed;
  return {
    topic: resource.topic,
    event_id: eventId,
    timestamp: nanos === 0n ? receivedAt : (isoFromNanos(nanos) ?? `unrepresentable: ${nanos} ns`),
    source: resource.source,
    payload: {
      body,
      severity_text: severityText === '' ? null : severityText,
      severity_number: severityNumber === 0 ? null : severityNumber,
      attributes: attrs,
      resource: resource.attributes,
      scope: scope.json,
      trace_id: traceId,
      span_id: spanId,
    },
  };
}

/**
 * The request's log records, each mapped to an event (unvalidated). `receivedAt` is the
 * timestamp of a record with neither time set (both 0, "unknown" in OTLP).
 */
export function mapLogsRequest(request: unknown, receivedAt: string): MappedRecord[] {
  const out: MappedRecord[] = [];
  for (const rl of list(object(request, 'the request').resourceLogs, 'resourceLogs')) {
    const resourceLogs = object(rl, 'resourceLogs[]');
    const resource = resourcePart(resourceLogs);
    for (const sl of list(resourceLogs.scopeLogs, 'scopeLogs')) {
      const scopeLogs = object(sl, 'scopeLogs[]');
      const scope = scopePart(scopeLogs, resource.key);
      for (const lr of list(scopeLogs.logRecords, 'logRecords')) out.push(recordEvent(object(lr, 'logRecords[]'), resource, scope, receivedAt));
    }
  }
  return out;
}

/** Past this many characters of resource and scope, a record's hash starts from a copy of theirs instead of hashing them again. */
const ONE_SHOT_PREFIX = 1024;

/**
 * The event ids of one scope's records: sha256 of `{"resource":…,"scope":…,"record":…}`, its
 * canonical JSON (every array in a fixed order, every object built in one), in hex; `prefix`
 * is that text up to the record's. One hash call per record.
 */
export function recordDigester(prefix: string): (record: string) => string {
  if (prefix.length <= ONE_SHOT_PREFIX) return (record) => `otlp-${hash('sha256', `${prefix}${record}}`, 'hex')}`;
  const state = createHash('sha256').update(prefix);
  return (record) => `otlp-${state.copy().update(record).update('}').digest('hex')}`;
}
