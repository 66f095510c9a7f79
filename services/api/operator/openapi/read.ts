// The read paths of the OpenAPI document: events, one identity, counts.
import { EXAMPLE_EVENT } from './event.js';
import { READ_AUTH, errorResponse, json, ref, retryAfter, unauthorized, type Json, type OpenApiOptions } from './parts.js';

export function readPaths(opts: OpenApiOptions): Json {
  return {
    '/events': {
      get: {
        operationId: 'listEvents',
        tags: ['read'],
        summary: 'Stored events in processing order',
        description:
          'Exactly one copy of each (topic, event_id), the first processed, in `seq` order. Page with `after`: pass the answer\'s `next_after` until it is null. Needs the read key when the API runs with `READ_API_KEY`.',
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
          401: unauthorized('READ_API_KEY'),
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
          'A subscriber whose unread output passes `STREAM_MAX_BUFFER_BYTES` is disconnected: reconnect with `Last-Event-ID` and nothing is lost. Any API process serves any subscriber. Needs the read key when the API runs with `READ_API_KEY`.',
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
          401: unauthorized('READ_API_KEY'),
          503: {
            description: 'This API process already serves `MAX_SUBSCRIBERS` streams, or is stopping. Retry after `Retry-After` seconds (another replica may have room).',
            headers: { 'Retry-After': retryAfter },
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
        summary: 'Counts: received, stored, dropped, conflicts, pending',
        description:
          'Durable counts: they survive restarts. Once the queue is drained, `received == unique_processed + duplicate_dropped` exactly. Needs the read key when the API runs with `READ_API_KEY`.',
        ...READ_AUTH,
        responses: {
          200: {
            description: 'The counts.',
            content: json(ref('Stats'), {
                received: 10,
                unique_processed: 8,
                duplicate_dropped: 2,
                pending: 0,
                conflicts: 1,
                expired: 0,
                erased: 0,
                redeliveries: 0,
                topics: ['orders'],
                topics_count: 1,
                topics_truncated: false,
                uptime_seconds: 122,
                per_topic: { orders: 8 },
                duplicates_per_topic: { orders: 2 },
                conflicts_per_topic: { orders: 1 },
                queue: { pending_jobs: 0, waiting: 0, active: 0, delayed: 0, failed: 0 },
                workers: { live: 1, list: [{ id: 'host-4242-1a2b3c4d', status: 'ok', error: null, committed_events: 10, role: 'writer' }] },
                store: { kind: 'sqlite', committed_jobs: 3, bytes: 4_194_304 },
                redis: 'ok',
            }),
          },
          401: unauthorized('READ_API_KEY'),
        },
      },
    },
    '/events/{topic}/{event_id}': {
      get: {
        operationId: 'getEvent',
        tags: ['read'],
        summary: 'One identity explained: its stored copy and every copy since',
        description:
          'Both parts URL-encoded (an `event_id` may hold `/`). `copies` counts every copy processed, the stored one included; `conflicts` those of them whose content differed from the stored copy. Needs the read key when the API runs with `READ_API_KEY`.',
        ...READ_AUTH,
        parameters: [
          { name: 'topic', in: 'path', required: true, schema: { type: 'string', minLength: 1 } },
          { name: 'event_id', in: 'path', required: true, description: 'May hold `/`.', schema: { type: 'string', minLength: 1 } },
        ],
        responses: {
          200: {
            description: 'The stored copy and its history.',
            content: json(ref('EventHistory'), {
                event: { ...EXAMPLE_EVENT, seq: 41, processed_at: '2025-10-24T00:00:00.123Z' },
                copies: 3,
                conflicts: 1,
                first_seen_at: '2025-10-24T00:00:00.123Z',
                last_seen_at: '2025-10-24T00:05:12.004Z',
            }),
          },
          400: errorResponse('A part is not valid URL-encoded UTF-8.', 'bad_request', 'event_id is not valid URL-encoded UTF-8'),
          401: unauthorized('READ_API_KEY'),
          404: errorResponse('No event with this identity was ever stored.', 'not_found', 'no event "e-1" was ever stored under topic "orders"'),
          410: errorResponse(
            'Stored once, then expired (older than `EVENT_RETENTION`) or erased: `error` is `expired` or `erased`. Its identity stays: later copies are dropped as duplicates.',
            'erased',
            'event "e-1" under topic "orders" was erased',
          ),
        },
      },
      delete: {
        operationId: 'eraseEvent',
        tags: ['read'],
        summary: 'Erase one stored event, payload included; its identity stays',
        description:
          'Both parts URL-encoded, as for the lookup. `204` once the stored event, payload included, is deleted from the store (on SQLite its freed space is overwritten and the write-ahead log emptied). The identity stays known: later copies are dropped as `duplicate`, and the lookup answers `410` `erased`. Each erasure is logged with its identity and request id, never the payload. When the API runs with `API_KEY`, send `Authorization: Bearer <API_KEY>`.',
        security: [{}, { bearerAuth: [] }],
        parameters: [
          { name: 'topic', in: 'path', required: true, schema: { type: 'string', minLength: 1 } },
          { name: 'event_id', in: 'path', required: true, description: 'May hold `/`.', schema: { type: 'string', minLength: 1 } },
        ],
        responses: {
          204: { description: 'Erased.' },
          400: errorResponse('A part is not valid URL-encoded UTF-8.', 'bad_request', 'event_id is not valid URL-encoded UTF-8'),
          401: unauthorized('API_KEY'),
          404: errorResponse('No event with this identity was ever stored.', 'not_found', 'no event "e-1" under topic "orders" was ever stored'),
          410: errorResponse(
            'Already deleted: `expired` (older than `EVENT_RETENTION`) or `erased` (by an earlier request).',
            'erased',
            'the event "e-1" under topic "orders" was erased already',
          ),
        },
      },
    },
  };
}
