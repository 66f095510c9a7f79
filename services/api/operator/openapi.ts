// The OpenAPI 3.1 document served at GET /openapi.json.
//
// The event's schema is generated from shared/schema.ts's EventSchema, the one the API
// validates with, so the document cannot drift from what /publish accepts; conversion
// runs with errorMode 'throw', so a rule added to the schema that JSON Schema cannot say
// fails the build of this document (and its test) instead of vanishing from it. The answers'
// shapes have no valibot schema; they are written here, and the test checks live answers
// against them.
import { toJsonSchema, type JsonSchema } from '@valibot/to-json-schema';
import { EventSchema, MAX_TEXT_CHARS } from '../../../shared/schema.js';

export type OpenApiOptions = {
  maxBatchEvents: number;
  maxBodyBytes: number;
  maxEventsLimit: number;
  defaultEventsLimit: number;
};

type Json = Record<string, unknown>;

/** What each field means; its rules come from the schema. */
const FIELD_MEANING: Record<string, string> = {
  topic: 'The stream the event belongs to.',
  event_id: "The event's id, chosen by the producer; (topic, event_id) is the event's identity: copies are dropped.",
  timestamp:
    'When the event happened: ISO 8601 date and time; an offset is optional (none means UTC), fractions of a second are allowed.',
  source: 'Who produced the event.',
  payload: 'Any JSON object, stored exactly as published.',
};

export const EXAMPLE_EVENT = {
  topic: 'orders',
  event_id: 'e-42',
  timestamp: '2025-10-24T00:00:00Z',
  source: 'checkout',
  payload: { amount: 12 },
};

const EXAMPLE_EVENT_2 = {
  topic: 'orders',
  event_id: 'e-43',
  timestamp: '2025-10-24T00:00:01.250+07:00',
  source: 'checkout',
  payload: { amount: 7, currency: 'EUR', items: [{ sku: 'A-1', qty: 1 }] },
};

/** Where the converter's action overrides gather a field's check messages; removed after. */
const RULES = 'x-rules';

/** The event as JSON Schema (draft 2020-12), converted from EventSchema. */
export function eventJsonSchema(): JsonSchema {
  const schema = toJsonSchema(EventSchema, {
    target: 'draft-2020-12',
    errorMode: 'throw',
    overrideSchema: ({ valibotSchema }) =>
      // The payload is a v.custom on purpose (see shared/schema.ts); what it accepts is an object.
      valibotSchema.type === 'custom' ? { type: 'object' } : undefined,
    overrideAction: ({ valibotAction, jsonSchema }) => {
      const action = valibotAction as { type: string; message?: unknown };
      if (action.type !== 'check') return undefined;
      // A check is code; JSON Schema gets its message as prose, and the one rule that has a
      // keyword of its own (maxLength counts characters, as the check does) gets it too.
      const message = typeof action.message === 'string' ? action.message : 'must pass a check';
      const out: JsonSchema & { [RULES]?: string[] } = { ...jsonSchema };
      if (message === `must be at most ${MAX_TEXT_CHARS} characters`) out.maxLength = MAX_TEXT_CHARS;
      out[RULES] = [...((jsonSchema as { [RULES]?: string[] })[RULES] ?? []), message];
      return out;
    },
  });
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  for (const [name, field] of Object.entries(properties) as [string, JsonSchema & { [RULES]?: string[] }][]) {
    const meaning = FIELD_MEANING[name];
    const fieldRules = field[RULES] ?? [];
    delete field[RULES];
    const text = fieldRules.length > 0 ? `${meaning ?? ''} It ${fieldRules.join('; ')}.` : meaning;
    if (text !== undefined) field.description = text.trim();
  }
  delete schema.$schema;
  schema.description =
    'One event. Unknown extra fields are accepted and ignored; what is stored is exactly these five fields.';
  schema.examples = [EXAMPLE_EVENT];
  return schema;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, example?: unknown) => ({
  'application/json': { schema, ...(example === undefined ? {} : { example }) },
});
const errorResponse = (description: string, code: string, message: string, extra: Json = {}) => ({
  description,
  content: json(ref('Error'), { error: code, message, ...extra }),
});

/** Reads are open unless the API runs with API_KEY_READS. */
const READ_AUTH = {
  security: [{}, { bearerAuth: [] }],
};

export function buildOpenApi(opts: OpenApiOptions): Json {
  const event = eventJsonSchema();
  const batchLimits = { minItems: 1, maxItems: opts.maxBatchEvents };
  const unavailable = {
    description: 'Redis is unreachable or the backlog is over its limit; nothing of the request was queued. Retry after `Retry-After` seconds.',
    headers: { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 0 } } },
    content: json(ref('Error'), { error: 'unavailable', message: 'the queue is unavailable; retry later' }),
  };
  const unauthorized = errorResponse(
    'The API key is missing or wrong.',
    'unauthorized',
    'send Authorization: Bearer <API_KEY>',
  );

  const publish = (operationId: string, summary: string) => ({
    operationId,
    tags: ['publish'],
    summary,
    description: [
      'Accepts one event, `{"events": [...]}` or a bare array as `application/json`, or one event per line as `application/x-ndjson`.',
      '`202` means the events are durably queued: the producer may forget them. On anything else, or no answer, retry: copies are dropped by (topic, event_id).',
      `At most ${opts.maxBatchEvents} events and ${opts.maxBodyBytes} bytes per request.`,
      'When the API runs with `API_KEY`, send `Authorization: Bearer <API_KEY>`.',
    ].join('\n\n'),
    security: [{}, { bearerAuth: [] }],
    requestBody: {
      required: true,
      content: {
        'application/json': {
          schema: ref('PublishBody'),
          examples: {
            one: { summary: 'One event', value: EXAMPLE_EVENT },
            batch: { summary: 'A batch', value: { events: [EXAMPLE_EVENT, EXAMPLE_EVENT_2] } },
            array: { summary: 'A bare array', value: [EXAMPLE_EVENT, EXAMPLE_EVENT_2] },
          },
        },
        'application/x-ndjson': {
          schema: { type: 'string', description: 'One event (as in Event) per line; blank lines are skipped.' },
          examples: {
            lines: { summary: 'Two events', value: `${JSON.stringify(EXAMPLE_EVENT)}\n${JSON.stringify(EXAMPLE_EVENT_2)}\n` },
          },
        },
      },
    },
    responses: {
      202: {
        description: 'Every event of the request is durably queued.',
        content: json(ref('Accepted'), { status: 'accepted', accepted: 2, job: 'p-2-2b1f0c9e-4f7d-4a53-9a43-1c2d3e4f5a6b' }),
      },
      400: errorResponse('The body is not valid JSON or NDJSON.', 'invalid_json', 'line 2 is not valid JSON: Unexpected end of JSON input', { line: 2 }),
      401: unauthorized,
      413: errorResponse('The body or the batch is over its limit.', 'batch_too_large', `the request holds 20000 events; at most ${opts.maxBatchEvents} are accepted at once`),
      415: errorResponse('Another content type.', 'unsupported_media_type', 'content type "text/plain" is not accepted: send application/json or application/x-ndjson'),
      422: {
        description: 'An event is invalid (nothing of the request is queued), or the batch is empty.',
        content: json(ref('ValidationError'), {
          error: 'validation_failed',
          message: '1 event(s) are invalid; nothing was accepted',
          details: [{ index: 1, path: 'timestamp', message: 'must be an ISO 8601 date and time, e.g. 2025-10-24T00:00:00Z' }],
        }),
      },
      503: unavailable,
    },
  });

  return {
    openapi: '3.1.0',
    info: {
      title: 'Event aggregator API',
      version: '1',
      description:
        'Producers publish events; workers store each (topic, event_id) exactly once, however many copies arrive. Reads show what is stored and how the pipeline is doing.',
    },
    tags: [
      { name: 'publish', description: 'For producers.' },
      { name: 'read', description: 'What is stored, and counts.' },
      { name: 'operate', description: 'Health, metrics, documentation and the dashboard.' },
    ],
    paths: {
      '/publish': { post: publish('publish', 'Publish events') },
      '/publish/batch': { post: publish('publishBatch', 'Publish events (the path many producers use for batches)') },
      '/events': {
        get: {
          operationId: 'listEvents',
          tags: ['read'],
          summary: 'Stored events in processing order',
          description:
            'Exactly one copy of each (topic, event_id), the first processed, in `seq` order. Page with `after`: pass the answer\'s `next_after` until it is null. Needs the key when the API runs with `API_KEY_READS`.',
          ...READ_AUTH,
          parameters: [
            { name: 'topic', in: 'query', required: false, description: 'Only this topic.', schema: { type: 'string', minLength: 1 } },
            {
              name: 'limit',
              in: 'query',
              required: false,
              description: 'Events per page.',
              schema: { type: 'integer', minimum: 1, maximum: opts.maxEventsLimit, default: opts.defaultEventsLimit },
            },
            {
              name: 'after',
              in: 'query',
              required: false,
              description: 'A `seq` cursor: only events after it.',
              schema: { type: 'integer', minimum: 0, default: 0 },
            },
          ],
          responses: {
            200: {
              description: 'A page of events.',
              content: json(ref('EventsPage'), {
                topic: 'orders',
                count: 1,
                events: [{ ...EXAMPLE_EVENT, seq: 1, processed_at: '2025-10-24T00:00:00.123Z' }],
                next_after: null,
              }),
            },
            400: errorResponse('A bad `limit`, `after` or `topic`.', 'bad_request', `limit must be a whole number from 1 to ${opts.maxEventsLimit}`),
            401: unauthorized,
          },
        },
      },
      '/events/stream': {
        get: {
          operationId: 'streamEvents',
          tags: ['read'],
          summary: 'Stored events as a live stream (Server-Sent Events)',
          description: [
            'Every stored event after the start point, exactly once, in `seq` order: first those already stored, then new ones as workers store them. Each is one message: `id:` its `seq`, `data:` the event as in `GET /events`, on one line. A comment line (`: keepalive`) comes at least every `STREAM_KEEPALIVE_MS` (15 s) while idle.',
            'The start point is the `Last-Event-ID` header (what a reconnecting `EventSource` sends), else `after`, else the newest event at connection time. The first line, a comment (`: after <seq>`), names it.',
            'A subscriber whose unread output passes `STREAM_MAX_BUFFER_BYTES` is disconnected: reconnect with `Last-Event-ID` and nothing is lost. Any API process serves any subscriber. Needs the key when the API runs with `READ_API_KEY`.',
          ].join('\n\n'),
          ...READ_AUTH,
          parameters: [
            { name: 'topic', in: 'query', required: false, description: 'Only this topic.', schema: { type: 'string', minLength: 1 } },
            { name: 'after', in: 'query', required: false, description: 'A `seq` cursor: only events after it.', schema: { type: 'integer', minimum: 0 } },
            {
              name: 'Last-Event-ID',
              in: 'header',
              required: false,
              description: 'The `id` of the last message received: the stream resumes after it. Wins over `after`.',
              schema: { type: 'integer', minimum: 0 },
            },
          ],
          responses: {
            200: {
              description: 'The stream; it ends only when the server stops or the client leaves.',
              content: {
                'text/event-stream': {
                  schema: { type: 'string' },
                  example: `: after 0\n\nid: 1\ndata: ${JSON.stringify({ seq: 1, ...EXAMPLE_EVENT, processed_at: '2025-10-24T00:00:00.123Z' })}\n\n: keepalive\n\n`,
                },
              },
            },
            400: errorResponse('A bad `after`, `Last-Event-ID` or `topic`.', 'bad_request', 'after must be a seq: a whole number, 0 or more'),
            401: unauthorized,
            503: {
              description: 'This API process already serves `MAX_SUBSCRIBERS` streams, or is stopping. Retry after `Retry-After` seconds (another replica may have room).',
              headers: { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 0 } } },
              content: json(ref('Error'), {
                error: 'too_many_subscribers',
                message: 'this API process already serves its 1000 subscribers (MAX_SUBSCRIBERS)',
              }),
            },
          },
        },
      },
      '/stats': {
        get: {
          operationId: 'stats',
          tags: ['read'],
          summary: 'Counts: received, stored, dropped, pending',
          description:
            'Durable counts: they survive restarts. Once the queue is drained, `received == unique_processed + duplicate_dropped` exactly. Needs the key when the API runs with `API_KEY_READS`.',
          ...READ_AUTH,
          responses: {
            200: {
              description: 'The counts.',
              content: json(ref('Stats'), {
                received: 10,
                unique_processed: 8,
                duplicate_dropped: 2,
                pending: 0,
                topics: ['orders'],
                uptime_seconds: 122,
                per_topic: { orders: 8 },
                queue: { pending_jobs: 0, waiting: 0, active: 0, delayed: 0, failed: 0 },
                workers: { live: 1, list: [{ id: 'host-4242-1a2b3c4d', status: 'ok', error: null, committed_events: 10 }] },
                store: { committed_jobs: 3, bytes: 4_194_304 },
                redis: 'ok',
              }),
            },
            401: unauthorized,
          },
        },
      },
      '/health': {
        get: {
          operationId: 'health',
          tags: ['operate'],
          summary: 'Liveness: 200 while the process runs',
          responses: { 200: { description: 'Running.', content: json(ref('Health'), { status: 'ok' }) } },
        },
      },
      '/ready': {
        get: {
          operationId: 'ready',
          tags: ['operate'],
          summary: 'Readiness: 200 when Redis and the store answer',
          responses: {
            200: {
              description: 'Ready.',
              content: json(ref('Ready'), {
                status: 'ready',
                checks: { store: 'ok', redis: 'ok' },
                workers: [{ id: 'host-4242-1a2b3c4d', status: 'ok', error: null }],
              }),
            },
            503: {
              description: 'Starting, stopping, or Redis or the store does not answer.',
              headers: { 'Retry-After': { schema: { type: 'integer', minimum: 0 } } },
              content: json(ref('Ready'), {
                error: 'not_ready',
                message: 'redis failing: Connection is closed.',
                checks: { store: 'ok', redis: 'failing: Connection is closed.' },
                workers: null,
              }),
            },
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          tags: ['operate'],
          summary: 'Prometheus metrics',
          description:
            "Prometheus text format. The counts mirror `/stats` (read through the same code); publish requests are counted per API process; workers' figures come from their heartbeats, labelled `worker`. Needs the key when the API runs with `API_KEY_READS`.",
          ...READ_AUTH,
          responses: {
            200: {
              description: 'The metrics.',
              content: {
                'text/plain': {
                  schema: { type: 'string' },
                  example: '# HELP aggregator_events_received_total Events taken into the queue, ever (GET /stats received).\n# TYPE aggregator_events_received_total counter\naggregator_events_received_total 10\n',
                },
              },
            },
            401: unauthorized,
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          tags: ['operate'],
          summary: 'This document',
          responses: { 200: { description: 'OpenAPI 3.1.', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
      '/docs': {
        get: {
          operationId: 'docs',
          tags: ['operate'],
          summary: 'This document as a page to read',
          responses: { 200: { description: 'HTML.', content: { 'text/html': { schema: { type: 'string' } } } } },
        },
      },
      '/': {
        get: {
          operationId: 'dashboard',
          tags: ['operate'],
          summary: 'The dashboard',
          description:
            'A page for people: live counts, throughput, topics and their latest events, the queue and the health of Redis, the store and the workers. It reads `/stats`, `/events` and `/ready`, asking for the key if reads need one.',
          responses: { 200: { description: 'HTML.', content: { 'text/html': { schema: { type: 'string' } } } } },
        },
      },
    },
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'The API key (`API_KEY`): needed for publishing when set, and for reads too with `API_KEY_READS`.',
        },
      },
      schemas: {
        Event: event,
        PublishBody: {
          description: 'One event, `{"events": [...]}`, or a bare array of events.',
          anyOf: [
            ref('Event'),
            {
              type: 'object',
              required: ['events'],
              properties: { events: { type: 'array', items: ref('Event'), ...batchLimits } },
            },
            { type: 'array', items: ref('Event'), ...batchLimits },
          ],
        },
        Accepted: {
          type: 'object',
          required: ['status', 'accepted'],
          properties: {
            status: { const: 'accepted' },
            accepted: { type: 'integer', minimum: 1, description: 'Events of the request, copies included.' },
            job: { type: 'string', description: 'The queue job that carries them.' },
          },
        },
        Error: {
          type: 'object',
          required: ['error', 'message'],
          description: 'Every error answer, on every path.',
          properties: { error: { type: 'string', description: 'A stable code.' }, message: { type: 'string' } },
        },
        ValidationError: {
          allOf: [
            ref('Error'),
            {
              type: 'object',
              properties: {
                details: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['index', 'path', 'message'],
                    properties: {
                      index: { type: 'integer', minimum: 0, description: "The event's position in the request, from 0 (NDJSON too)." },
                      path: { type: 'string', description: 'The field, e.g. `timestamp` or `payload`; empty for the event itself.' },
                      message: { type: 'string' },
                    },
                  },
                },
              },
            },
          ],
        },
        StoredEvent: {
          allOf: [
            ref('Event'),
            {
              type: 'object',
              required: ['seq', 'processed_at'],
              properties: {
                seq: { type: 'integer', minimum: 1, description: "The store's processing order." },
                processed_at: { type: 'string', description: 'When the event was stored (ISO 8601, UTC).' },
              },
            },
          ],
        },
        EventsPage: {
          type: 'object',
          required: ['topic', 'count', 'events', 'next_after'],
          properties: {
            topic: { type: ['string', 'null'] },
            count: { type: 'integer', minimum: 0 },
            events: { type: 'array', items: ref('StoredEvent') },
            next_after: { type: ['integer', 'null'], description: 'Pass as `after` for the next page; null on the last.' },
          },
        },
        Stats: {
          type: 'object',
          required: ['received', 'unique_processed', 'duplicate_dropped', 'pending', 'topics', 'uptime_seconds'],
          properties: {
            received: { type: 'integer', minimum: 0, description: 'Events taken into the queue, ever.' },
            unique_processed: { type: 'integer', minimum: 0, description: 'Events stored.' },
            duplicate_dropped: { type: 'integer', minimum: 0, description: 'Copies dropped.' },
            pending: { type: ['integer', 'null'], minimum: 0, description: 'Accepted, not yet processed; null while Redis is unreachable.' },
            topics: { type: 'array', items: { type: 'string' }, description: 'Sorted names of topics with a stored event.' },
            uptime_seconds: { type: 'integer', minimum: 0, description: 'Of the API process.' },
            per_topic: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Stored events by topic.' },
            queue: {
              type: ['object', 'null'],
              required: ['pending_jobs', 'waiting', 'active', 'delayed', 'failed'],
              properties: {
                pending_jobs: { type: 'integer', minimum: 0 },
                waiting: { type: 'integer', minimum: 0 },
                active: { type: 'integer', minimum: 0 },
                delayed: { type: 'integer', minimum: 0 },
                failed: { type: 'integer', minimum: 0 },
              },
            },
            workers: {
              type: ['object', 'null'],
              required: ['live', 'list'],
              properties: {
                live: { type: 'integer', minimum: 0 },
                list: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['id', 'status'],
                    properties: {
                      id: { type: 'string' },
                      status: { enum: ['ok', 'store_error', 'stopping'] },
                      error: { type: ['string', 'null'] },
                      committed_events: { type: 'integer', minimum: 0 },
                    },
                  },
                },
              },
            },
            store: {
              type: 'object',
              required: ['committed_jobs', 'bytes'],
              properties: { committed_jobs: { type: 'integer', minimum: 0 }, bytes: { type: 'integer', minimum: 0 } },
            },
            redis: { type: 'string', description: '`ok`, or why Redis is unavailable.' },
          },
        },
        Health: { type: 'object', required: ['status'], properties: { status: { const: 'ok' } } },
        Ready: {
          type: 'object',
          required: ['checks', 'workers'],
          properties: {
            status: { const: 'ready' },
            error: { const: 'not_ready' },
            message: { type: 'string' },
            checks: {
              type: 'object',
              properties: { store: { type: 'string' }, redis: { type: 'string' } },
            },
            workers: {
              type: ['array', 'null'],
              items: {
                type: 'object',
                required: ['id', 'status'],
                properties: { id: { type: 'string' }, status: { type: 'string' }, error: { type: ['string', 'null'] } },
              },
            },
          },
        },
      },
    },
  };
}
