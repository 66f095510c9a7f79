// The OTLP logs messages, from the official opentelemetry-proto definitions (v1.5:
// common/v1/common.proto, resource/v1/resource.proto, logs/v1/logs.proto and
// collector/logs/v1/logs_service.proto), trimmed to the messages a logs export uses and
// read by protobufjs once, when the module loads. Kept as text here rather than as .proto
// files so the build has nothing to copy; field names and numbers are the official ones.
import protobuf from 'protobufjs';

const COMMON = `
syntax = "proto3";
package opentelemetry.proto.common.v1;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}
message EntityRef {
  string schema_url = 1;
  string type = 2;
  repeated string id_keys = 3;
  repeated string description_keys = 4;
}
`;

const RESOURCE = `
syntax = "proto3";
package opentelemetry.proto.resource.v1;
message Resource {
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
  repeated opentelemetry.proto.common.v1.EntityRef entity_refs = 3;
}
`;

const LOGS = `
syntax = "proto3";
package opentelemetry.proto.logs.v1;
message ResourceLogs {
  reserved 1000;
  opentelemetry.proto.resource.v1.Resource resource = 1;
  repeated ScopeLogs scope_logs = 2;
  string schema_url = 3;
}
message ScopeLogs {
  opentelemetry.proto.common.v1.InstrumentationScope scope = 1;
  repeated LogRecord log_records = 2;
  string schema_url = 3;
}
message LogRecord {
  reserved 4;
  fixed64 time_unix_nano = 1;
  fixed64 observed_time_unix_nano = 11;
  int32 severity_number = 2;
  string severity_text = 3;
  opentelemetry.proto.common.v1.AnyValue body = 5;
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7;
  fixed32 flags = 8;
  bytes trace_id = 9;
  bytes span_id = 10;
  string event_name = 12;
}
`;

const SERVICE = `
syntax = "proto3";
package opentelemetry.proto.collector.logs.v1;
message ExportLogsServiceRequest {
  repeated opentelemetry.proto.logs.v1.ResourceLogs resource_logs = 1;
}
message ExportLogsServiceResponse {
  ExportLogsPartialSuccess partial_success = 1;
}
message ExportLogsPartialSuccess {
  int64 rejected_log_records = 1;
  string error_message = 2;
}
`;

// severity_number is the SeverityNumber enum in logs.proto; an enum and an int32 are the
// same varint on the wire, and as a number it reads back as OTLP/JSON writes it.
const root = new protobuf.Root();
for (const text of [COMMON, RESOURCE, LOGS, SERVICE]) protobuf.parse(text, root, { keepCase: false });
root.resolveAll();

const Request = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
const Response = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse');

/** The numbers of a message's fields, by name (`type` under opentelemetry.proto.), for a reader that goes field by field. */
export function fieldNumbers<K extends string>(type: string, names: readonly K[]): Record<K, number> {
  const fields = root.lookupType(`opentelemetry.proto.${type}`).fields;
  const numbers = {} as Record<K, number>;
  for (const name of names) {
    const field = fields[name];
    if (field === undefined) throw new Error(`${type} has no field ${name}`);
    numbers[name] = field.id;
  }
  return numbers;
}

/**
 * An ExportLogsServiceRequest's bytes as protobufjs' own decoder reads them, in OTLP/JSON's
 * shape (lowerCamelCase names, 64-bit integers as decimal strings, bytes as base64, trace and
 * span ids as hex): what the direct decoder (otlp-decode.ts) is tested against, through the
 * OTLP/JSON mapping. Throws on bytes that are not such a message.
 */
export function decodeLogsRequest(bytes: Uint8Array): Record<string, unknown> {
  const request = Request.toObject(Request.decode(bytes), { longs: String, bytes: String, defaults: false, arrays: false, oneofs: false });
  const hex = (b64: unknown) => (typeof b64 === 'string' ? Buffer.from(b64, 'base64').toString('hex') : b64);
  for (const rl of (request.resourceLogs ?? []) as { scopeLogs?: { logRecords?: Record<string, unknown>[] }[] }[]) {
    for (const sl of rl.scopeLogs ?? []) {
      for (const lr of sl.logRecords ?? []) {
        if ('traceId' in lr) lr.traceId = hex(lr.traceId);
        if ('spanId' in lr) lr.spanId = hex(lr.spanId);
      }
    }
  }
  return request;
}

/** An ExportLogsServiceResponse, with partial_success when something was rejected. */
export function encodeLogsResponse(rejected: number, errorMessage: string): Uint8Array {
  const body = rejected > 0 || errorMessage !== '' ? { partialSuccess: { rejectedLogRecords: rejected, errorMessage } } : {};
  return Response.encode(Response.fromObject(body)).finish();
}

/** An ExportLogsServiceRequest from an object in protobufjs' shape (ids and bytes as Buffers): what an exporter sends, for tests. */
export function encodeLogsRequest(request: Record<string, unknown>): Uint8Array {
  return Request.encode(Request.fromObject(request)).finish();
}
