// The shapes of the API's answers in the OpenAPI document. They have no valibot schema of
// their own: the test checks every live answer against them, refusing undeclared fields.
import { STATS_TOPICS_LIMIT } from '../../read/stats.js';
import { eventJsonSchema } from './event.js';
import { ref, type Json } from './parts.js';

export function answerSchemas(opts: { maxBatchEvents: number }): Json {
  const batchLimits = { minItems: 1, maxItems: opts.maxBatchEvents };
  return {
    Event: eventJsonSchema(),
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
    Processed: {
      type: 'object',
      required: ['status', 'accepted', 'results'],
      properties: {
        status: { const: 'processed' },
        accepted: { type: 'integer', minimum: 1, description: 'Events of the request, copies included.' },
        job: { type: 'string', description: 'The queue job that carried them.' },
        results: {
          type: 'array',
          description: 'One per event, in request order.',
          items: {
            type: 'object',
            required: ['index', 'status', 'seq'],
            properties: {
              index: { type: 'integer', minimum: 0 },
              status: {
                enum: ['stored', 'duplicate', 'conflict'],
                description: '`duplicate`: a copy of a stored event; `conflict`: a copy whose content (source, payload as a JSON value, timestamp as an instant) differs. Either way the copy is dropped and the first copy stays.',
              },
              seq: { type: 'integer', minimum: 1, description: "The seq of this identity's stored copy." },
            },
          },
        },
      },
    },
    EventHistory: {
      type: 'object',
      required: ['event', 'copies', 'conflicts', 'first_seen_at', 'last_seen_at'],
      properties: {
        event: ref('StoredEvent'),
        copies: { type: 'integer', minimum: 1, description: 'Every copy processed, the stored one included.' },
        conflicts: { type: 'integer', minimum: 0, description: 'Copies whose content differed from the stored one.' },
        first_seen_at: { type: 'string', description: 'When the stored copy was processed (ISO 8601, UTC).' },
        last_seen_at: { type: 'string', description: 'When the latest copy was processed.' },
      },
    },
    Error: {
      type: 'object',
      required: ['error', 'message'],
      description: 'Every error answer, on every path.',
      properties: {
        error: { type: 'string', description: 'A stable code.' },
        message: { type: 'string' },
        line: { type: 'integer', minimum: 1, description: 'For an NDJSON body that is not JSON: the first line that is not.' },
      },
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
      required: ['received', 'unique_processed', 'duplicate_dropped', 'pending', 'conflicts', 'topics', 'topics_count', 'topics_truncated', 'uptime_seconds'],
      properties: {
        received: { type: 'integer', minimum: 0, description: 'Events taken into the queue, ever.' },
        unique_processed: { type: 'integer', minimum: 0, description: 'Events stored.' },
        duplicate_dropped: { type: 'integer', minimum: 0, description: 'Copies dropped, conflicts included.' },
        pending: { type: ['integer', 'null'], minimum: 0, description: 'Accepted, not yet processed; null while Redis is unreachable.' },
        conflicts: { type: 'integer', minimum: 0, description: 'Of the dropped copies, those whose content differed from the stored copy.' },
        expired: {
          type: 'integer',
          minimum: 0,
          description: 'Stored events deleted so far because they outlived `EVENT_RETENTION` (still counted in `unique_processed`).',
        },
        erased: { type: 'integer', minimum: 0, description: 'Stored events deleted so far by `DELETE /events/{topic}/{event_id}` (still counted in `unique_processed`).' },
        redeliveries: {
          type: 'integer',
          minimum: 0,
          description: "Jobs processed again after their worker died between commit and acknowledgement: the system's own retries, which change nothing.",
        },
        topics: { type: 'array', items: { type: 'string' }, description: `Sorted names of topics with a stored event, at most ${STATS_TOPICS_LIMIT}.` },
        topics_count: { type: 'integer', minimum: 0, description: 'How many topics have a stored event.' },
        topics_truncated: { type: 'boolean', description: 'Whether `topics` was cut at its limit (GET /topics pages through all).' },
        uptime_seconds: { type: 'integer', minimum: 0, description: 'Of the API process.' },
        per_topic: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Stored events by topic, for the topics listed.' },
        duplicates_per_topic: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Dropped copies by topic, for the topics listed.' },
        conflicts_per_topic: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Conflicts by topic, for the topics listed.' },
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
                  role: { enum: ['writer', 'standby'], description: 'SQLite: whether this worker takes the jobs (it holds the writer lease) or stands by; absent on PostgreSQL' },
                },
              },
            },
          },
        },
        store: {
          type: 'object',
          required: ['kind', 'committed_jobs', 'bytes'],
          properties: {
            kind: { enum: ['sqlite', 'postgres'] },
            committed_jobs: { type: 'integer', minimum: 0 },
            bytes: { type: 'integer', minimum: 0 },
          },
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
            properties: { id: { type: 'string' }, status: { type: 'string' }, error: { type: ['string', 'null'] }, role: { enum: ['writer', 'standby'] } },
          },
        },
      },
    },
  };
}
