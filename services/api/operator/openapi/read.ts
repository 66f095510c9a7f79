// The read paths of the OpenAPI document: events, one identity, counts.
import { EXAMPLE_EVENT } from './event.js';
import { READ_AUTH, errorResponse, json, ref, unauthorized, type Json, type OpenApiOptions } from './parts.js';

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
                redeliveries: 0,
                topics: ['orders'],
                topics_count: 1,
                topics_truncated: false,
                uptime_seconds: 122,
                per_topic: { orders: 8 },
                duplicates_per_topic: { orders: 2 },
                conflicts_per_topic: { orders: 1 },
                queue: { pending_jobs: 0, waiting: 0, active: 0, delayed: 0, failed: 0 },
                workers: { live: 1, list: [{ id: 'host-4242-1a2b3c4d', status: 'ok', error: null, committed_events: 10 }] },
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
        },
      },
    },
  };
}
