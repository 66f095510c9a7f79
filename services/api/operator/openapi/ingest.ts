// POST /v1/logs (OTLP/HTTP logs) and Segment's tracking API in the OpenAPI document. Their
// bodies are the protocols' own (OTLP's ExportLogsServiceRequest, Segment's batch), written
// by existing clients: the descriptions point at them rather than restate them.
import { errorResponse, json, ref, retryAfter, type Json, type OpenApiOptions } from './parts.js';

const SEGMENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;

const unavailable = {
  description: 'The backlog is over its limit, Redis is unreachable, or too many request bytes are in flight: nothing was queued. Retry after `Retry-After` seconds (the clients do).',
  headers: { 'Retry-After': retryAfter },
  content: json(ref('Error'), { error: 'unavailable', message: 'the backlog is over its limit of 20000 jobs; retry later' }),
};

function otlpLogs(opts: OpenApiOptions): Json {
  return {
    operationId: 'otlpLogs',
    tags: ['publish'],
    summary: 'Ingest OpenTelemetry logs (OTLP/HTTP)',
    description: [
      'The OTLP/HTTP logs endpoint: an `ExportLogsServiceRequest` as `application/x-protobuf` or `application/json` (OTLP/JSON), optionally `Content-Encoding: gzip`. Point an OpenTelemetry SDK exporter or the Collector\'s `otlphttp` exporter at the service.',
      'Each log record becomes one event: `topic` the resource attribute `service.name` (else `unknown_service`); `event_id` the record attribute `log.record.uid`, else a digest of the record with its resource and scope (the same for an exporter\'s retry); `timestamp` `timeUnixNano`, else `observedTimeUnixNano`, else the time received; `source` `service.instance.id`, else `host.name`, else `service.name`, else `otlp`; `payload` `{body, severity_text, severity_number, attributes, resource, scope, trace_id, span_id}`.',
      `Records that fail the event schema are rejected and named in \`partialSuccess\`; the others are queued. At most ${opts.maxBatchEvents} records and ${opts.maxBodyBytes} bytes (after decompression) per request.`,
      'When the API runs with `API_KEY`, send `Authorization: Bearer <API_KEY>` (the exporters\' `headers` option).',
    ].join('\n\n'),
    security: [{}, { bearerAuth: [] }],
    responses: {
      200: {
        description: 'The records are queued, in the request\'s encoding; `partialSuccess` when some were rejected.',
        content: {
          ...json(ref('OtlpLogsResponse'), { partialSuccess: { rejectedLogRecords: 1, errorMessage: '1 log record(s) rejected: record 2: topic must be at most 255 characters' } }),
          'application/x-protobuf': { schema: { type: 'string', contentMediaType: 'application/x-protobuf', description: 'An ExportLogsServiceResponse.' } },
        },
      },
      400: errorResponse('The body cannot be decoded as an ExportLogsServiceRequest.', 'invalid_otlp', 'the body is not an OTLP ExportLogsServiceRequest in protobuf: index out of range'),
      401: errorResponse('`API_KEY` is set and the bearer key is missing or wrong.', 'unauthorized', 'send Authorization: Bearer <API_KEY>'),
      413: errorResponse('The body or the number of records is over its limit.', 'payload_too_large', `the body is larger than ${opts.maxBodyBytes} bytes`),
      415: errorResponse('Another content type.', 'unsupported_media_type', 'content type "text/plain" is not accepted: send application/x-protobuf or application/json'),
      503: unavailable,
    },
  };
}

function segment(opts: OpenApiOptions, type: (typeof SEGMENT_TYPES)[number] | undefined): Json {
  const batch = type === undefined;
  return {
    operationId: batch ? 'segmentBatch' : `segment${type[0]!.toUpperCase()}${type.slice(1)}`,
    tags: ['publish'],
    summary: batch ? 'Ingest a batch of Segment messages' : `Ingest one Segment ${type} message`,
    description: [
      batch
        ? "Segment's tracking API batch: `{\"batch\": [messages], \"sentAt\"?, \"context\"?}` as `application/json`, as analytics-node and Segment's other SDKs send it. A top-level `context` or `integrations` applies to every message."
        : `One \`${type}\` message as \`application/json\` (its \`type\` is the path's).`,
      'Each message becomes one event: `topic` its `event` for `track`, else its `type`; `event_id` its `messageId` (required); `timestamp` its `timestamp`, else `sentAt`, else the time received; `source` `context.library.name`, else `segment`; `payload` the whole message.',
      `Any invalid message refuses the whole request with \`400\`, each problem naming its message's \`index\`: Segment's SDKs drop a batch answered \`400\` instead of retrying it. At most ${opts.maxBatchEvents} messages and ${opts.maxBodyBytes} bytes per request.`,
      'When the API runs with `API_KEY`, the write key (HTTP Basic user name, as the SDKs send it) must be `API_KEY`.',
    ].join('\n\n'),
    security: [{}, { segmentWriteKey: [] }],
    responses: {
      200: { description: 'Every message is durably queued.', content: json(ref('SegmentSuccess'), { success: true }) },
      400: {
        description: 'The body is not JSON, or a message is invalid: nothing of the request was queued.',
        content: json(ref('ValidationError'), {
          error: 'validation_failed',
          message: '1 message(s) are invalid; nothing was accepted',
          details: [{ index: 1, path: 'messageId', message: 'is required: it is the identity copies are dropped by' }],
        }),
      },
      401: errorResponse('`API_KEY` is set and the write key is missing or wrong.', 'unauthorized', 'the write key is wrong'),
      413: errorResponse('The body or the batch is over its limit.', 'payload_too_large', `the body is larger than ${opts.maxBodyBytes} bytes`),
      415: errorResponse('Another content type.', 'unsupported_media_type', 'content type "text/plain" is not accepted: send application/json'),
      503: unavailable,
    },
  };
}

export function ingestPaths(opts: OpenApiOptions): Json {
  return {
    '/v1/logs': { post: otlpLogs(opts) },
    '/v1/batch': { post: segment(opts, undefined) },
    ...Object.fromEntries(SEGMENT_TYPES.map((type) => [`/v1/${type}`, { post: segment(opts, type) }])),
  };
}

export function ingestSchemas(): Json {
  return {
    OtlpLogsResponse: {
      type: 'object',
      description: 'An ExportLogsServiceResponse in OTLP/JSON; `{}` when every record was accepted.',
      properties: {
        partialSuccess: {
          type: 'object',
          properties: {
            rejectedLogRecords: { type: 'integer', minimum: 0, description: 'How many records were rejected.' },
            errorMessage: { type: 'string', description: 'Why, for the first few of them (`record i: ...`, i counted across the request from 0).' },
          },
        },
      },
    },
    SegmentSuccess: { type: 'object', required: ['success'], properties: { success: { type: 'boolean', const: true } } },
  };
}

export const segmentWriteKey = {
  type: 'http',
  scheme: 'basic',
  description: "Segment's write key as the HTTP Basic user name (password empty): `API_KEY`, when set.",
};
