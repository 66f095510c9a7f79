// An ExportLogsServiceRequest in protobuf straight to one event per log record, read field by
// field with protobufjs' Reader (numbers from the official definitions, otlp-proto.ts): no
// message objects, no OTLP/JSON in between. The events are the ones otlp-map.ts makes of
// protobufjs' own decoding in OTLP/JSON's shape, digest included (the unit tests hold the two
// paths to that); each record's digest input is written as text while the record is read,
// and hashed in one call.
//
// Fields may come in any order, and a ResourceLogs' or a ScopeLogs' schema_url follows its
// records on the wire (field order): the records of each are read once all else of it is.
import protobuf, { type Reader } from 'protobufjs';
import { HttpError } from '../http/errors.js';
import { attributeText, isoFromNanos, recordDigester, type MappedRecord } from './otlp-map.js';
import { fieldNumbers } from './otlp-proto.js';
import {
  bytesAs,
  canonicalPairs,
  enter,
  expectWire,
  jsonString,
  leave,
  NO_VALUE,
  readAnyValue,
  readKeyValue,
  readString,
  undecodable,
  WIRE_FIXED32,
  WIRE_FIXED64,
  WIRE_VARINT,
  type KeyValues,
  type Value,
} from './otlp-values.js';

const REQUEST = fieldNumbers('collector.logs.v1.ExportLogsServiceRequest', ['resourceLogs']);
const RESOURCE_LOGS = fieldNumbers('logs.v1.ResourceLogs', ['resource', 'scopeLogs', 'schemaUrl']);
const RESOURCE = fieldNumbers('resource.v1.Resource', ['attributes', 'droppedAttributesCount']);
const SCOPE_LOGS = fieldNumbers('logs.v1.ScopeLogs', ['scope', 'logRecords', 'schemaUrl']);
const SCOPE = fieldNumbers('common.v1.InstrumentationScope', ['name', 'version', 'attributes', 'droppedAttributesCount']);
const RECORD = fieldNumbers('logs.v1.LogRecord', [
  'timeUnixNano',
  'observedTimeUnixNano',
  'severityNumber',
  'severityText',
  'body',
  'attributes',
  'droppedAttributesCount',
  'flags',
  'traceId',
  'spanId',
  'eventName',
]);

/** What every record of a scope shares: the event fields from its resource, its payload's parts, its digest. */
type ScopeContext = {
  topic: string;
  source: string;
  resource: Record<string, unknown>;
  scope: { name: string; version: string; attributes: Record<string, unknown> };
  digest: (record: string) => string;
};

/** The request's log records, each mapped to an event (unvalidated); 400 for bytes that are not such a request. */
export function decodeLogs(bytes: Buffer, receivedAt: string): MappedRecord[] {
  const r = protobuf.Reader.create(bytes);
  const out: MappedRecord[] = [];
  try {
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 === REQUEST.resourceLogs) readResourceLogs(r, enter(r, tag, 0), 1, receivedAt, out);
      else r.skipType(tag & 7, 0);
    }
  } catch (err) {
    // protobufjs' Reader throws plain errors for truncated bodies and bad wire types.
    throw err instanceof HttpError ? err : undecodable((err as Error).message);
  }
  return out;
}

/** Where the embedded messages of field `tag` are: [start, end] pairs, read later. */
function skipMessage(r: Reader, tag: number, depth: number, into: number[]): void {
  const end = enter(r, tag, depth);
  into.push(r.pos, end);
  r.pos = end;
}

function readResourceLogs(r: Reader, end: number, depth: number, receivedAt: string, out: MappedRecord[]): void {
  let resource: { kvs: KeyValues; dropped: number } = { kvs: { plain: {}, pairs: [] }, dropped: 0 };
  let schemaUrl = '';
  const scopeLogs: number[] = [];
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === RESOURCE_LOGS.resource) resource = readResource(r, enter(r, tag, depth), depth + 1);
    else if (field === RESOURCE_LOGS.scopeLogs) skipMessage(r, tag, depth, scopeLogs);
    else if (field === RESOURCE_LOGS.schemaUrl) schemaUrl = readString(r, tag);
    else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  const attributes = resource.kvs.plain;
  const serviceName = attributeText(attributes, 'service.name');
  const resourceKey = `{"attributes":${canonicalPairs(resource.kvs.pairs)},"dropped":${resource.dropped},"schemaUrl":${JSON.stringify(schemaUrl)}}`;
  const shared = {
    topic: serviceName ?? 'unknown_service',
    source: attributeText(attributes, 'service.instance.id') ?? attributeText(attributes, 'host.name') ?? serviceName ?? 'otlp',
    resource: attributes,
  };
  for (let i = 0; i < scopeLogs.length; i += 2) {
    r.pos = scopeLogs[i]!;
    readScopeLogs(r, scopeLogs[i + 1]!, depth + 1, shared, resourceKey, receivedAt, out);
  }
  r.pos = end;
}

function readResource(r: Reader, end: number, depth: number): { kvs: KeyValues; dropped: number } {
  const kvs: KeyValues = { plain: {}, pairs: [] };
  let dropped = 0;
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === RESOURCE.attributes) readKeyValue(r, enter(r, tag, depth), depth + 1, kvs);
    else if (field === RESOURCE.droppedAttributesCount) dropped = varint(r, tag);
    else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  return { kvs, dropped };
}

function readScopeLogs(
  r: Reader,
  end: number,
  depth: number,
  shared: Pick<ScopeContext, 'topic' | 'source' | 'resource'>,
  resourceKey: string,
  receivedAt: string,
  out: MappedRecord[],
): void {
  let scope = { name: '', version: '', kvs: { plain: {}, pairs: [] } as KeyValues, dropped: 0 };
  let schemaUrl = '';
  const records: number[] = [];
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === SCOPE_LOGS.scope) scope = readScope(r, enter(r, tag, depth), depth + 1);
    else if (field === SCOPE_LOGS.logRecords) skipMessage(r, tag, depth, records);
    else if (field === SCOPE_LOGS.schemaUrl) schemaUrl = readString(r, tag);
    else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  const { name, version } = scope;
  const scopeKey = `{"name":${JSON.stringify(name)},"version":${JSON.stringify(version)},"attributes":${canonicalPairs(scope.kvs.pairs)},"dropped":${scope.dropped},"schemaUrl":${JSON.stringify(schemaUrl)}}`;
  const context: ScopeContext = {
    ...shared,
    scope: { name, version, attributes: scope.kvs.plain },
    digest: recordDigester(`{"resource":${resourceKey},"scope":${scopeKey},"record":`),
  };
  for (let i = 0; i < records.length; i += 2) {
    r.pos = records[i]!;
    out.push(toEvent(readLogRecord(r, records[i + 1]!, depth + 1), context, receivedAt));
  }
  r.pos = end;
}

function readScope(r: Reader, end: number, depth: number) {
  const scope = { name: '', version: '', kvs: { plain: {}, pairs: [] } as KeyValues, dropped: 0 };
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === SCOPE.name) scope.name = readString(r, tag);
    else if (field === SCOPE.version) scope.version = readString(r, tag);
    else if (field === SCOPE.attributes) readKeyValue(r, enter(r, tag, depth), depth + 1, scope.kvs);
    else if (field === SCOPE.droppedAttributesCount) scope.dropped = varint(r, tag);
    else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  return scope;
}

function varint(r: Reader, tag: number): number {
  expectWire(tag, WIRE_VARINT);
  return r.uint32();
}

function int32(r: Reader, tag: number): number {
  expectWire(tag, WIRE_VARINT);
  return r.int32();
}

function fixed32(r: Reader, tag: number): number {
  expectWire(tag, WIRE_FIXED32);
  return r.fixed32();
}

/** A fixed64 (unsigned), as BigInt: nanoseconds past 2^53. */
function fixed64(r: Reader, tag: number): bigint {
  expectWire(tag, WIRE_FIXED64);
  const low = r.fixed32();
  const high = r.fixed32();
  return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
}

type LogRecordFields = {
  time: bigint;
  observed: bigint;
  severityNumber: number;
  severityText: string;
  body: Value;
  attributes: KeyValues;
  dropped: number;
  flags: number;
  traceId: string;
  spanId: string;
  eventName: string;
};

function readLogRecord(r: Reader, end: number, depth: number): LogRecordFields {
  const f: LogRecordFields = {
    time: 0n,
    observed: 0n,
    severityNumber: 0,
    severityText: '',
    body: NO_VALUE,
    attributes: { plain: {}, pairs: [] },
    dropped: 0,
    flags: 0,
    traceId: '',
    spanId: '',
    eventName: '',
  };
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === RECORD.attributes) readKeyValue(r, enter(r, tag, depth), depth + 1, f.attributes);
    else if (field === RECORD.body) f.body = readAnyValue(r, enter(r, tag, depth), depth + 1);
    else if (field === RECORD.timeUnixNano) f.time = fixed64(r, tag);
    else if (field === RECORD.observedTimeUnixNano) f.observed = fixed64(r, tag);
    else if (field === RECORD.severityNumber) f.severityNumber = int32(r, tag);
    else if (field === RECORD.severityText) f.severityText = readString(r, tag);
    else if (field === RECORD.droppedAttributesCount) f.dropped = varint(r, tag);
    else if (field === RECORD.flags) f.flags = fixed32(r, tag);
    else if (field === RECORD.traceId) f.traceId = bytesAs(r, tag, 'hex');
    else if (field === RECORD.spanId) f.spanId = bytesAs(r, tag, 'hex');
    else if (field === RECORD.eventName) f.eventName = readString(r, tag);
    else r.skipType(tag & 7, depth);
  }
  leave(r, end);
  return f;
}

const hexOrNull = (id: string) => (id === '' ? 'null' : `"${id}"`);

/** A record's event, as mapLogsRequest (otlp-map.ts) maps the same record in OTLP/JSON. */
function toEvent(f: LogRecordFields, context: ScopeContext, receivedAt: string): MappedRecord {
  const uid = attributeText(f.attributes.plain, 'log.record.uid');
  const eventId =
    uid ??
    context.digest(
      `{"time":"${f.time}","observed":"${f.observed}","severityNumber":${f.severityNumber},"severityText":${jsonString(f.severityText)},` +
        `"body":${f.body.canon},"attributes":${canonicalPairs(f.attributes.pairs)},"dropped":${f.dropped},"flags":${f.flags},` +
        `"traceId":${hexOrNull(f.traceId)},"spanId":${hexOrNull(f.spanId)},"eventName":${jsonString(f.eventName)}}`,
    );
  const nanos = f.time !== 0n ? f.time : f.observed;
  return {
    topic: context.topic,
    event_id: eventId,
    timestamp: nanos === 0n ? receivedAt : (isoFromNanos(nanos) ?? `unrepresentable: ${nanos} ns`),
    source: context.source,
    payload: {
      body: f.body.plain,
      severity_text: f.severityText === '' ? null : f.severityText,
      severity_number: f.severityNumber === 0 ? null : f.severityNumber,
      attributes: f.attributes.plain,
      resource: context.resource,
      scope: context.scope,
      trace_id: f.traceId === '' ? null : f.traceId,
      span_id: f.spanId === '' ? null : f.spanId,
    },
  };
}
