// POST /publish and /publish/batch in the OpenAPI document.
import { EXAMPLE_EVENT, EXAMPLE_EVENT_2 } from './event.js';
import { errorResponse, json, ref, retryAfter, unauthorized, type Json, type OpenApiOptions } from './parts.js';

export function publishOperation(opts: OpenApiOptions, operationId: string, summary: string): Json {
  return {
    operationId,
    tags: ['publish'],
    summary,
    description: [
      'Accepts one event, `{"events": [...]}` or a bare array as `application/json`, or one event per line as `application/x-ndjson`.',
      '`202` means the events are durably queued: the producer may forget them. On anything else, or no answer, retry: copies are dropped by (topic, event_id).',
      'With `?wait=s` the API waits up to `s` seconds for the events to be processed and answers `200` with what became of each: `stored`, `duplicate` (a copy of a stored event), or `conflict` (a copy whose content differs from the stored one; the first copy wins). If the time runs out the answer is the usual `202`: the events stay accepted.',
      `At most ${opts.maxBatchEvents} events and ${opts.maxBodyBytes} bytes per request.`,
      'When the API runs with `API_KEY`, send `Authorization: Bearer <API_KEY>`.',
    ].join('\n\n'),
    security: [{}, { bearerAuth: [] }],
    parameters: [
      {
        name: 'wait',
        in: 'query',
        required: false,
        description: 'Seconds to wait for the results (0 < wait <= 30); without it, the answer comes as soon as the events are queued.',
        schema: { type: 'number', exclusiveMinimum: 0, maximum: 30 },
      },
    ],
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
      200: {
        description: 'With `?wait`: every event was processed in time; one result per event, in request order.',
        content: json(ref('Processed'), {
            status: 'processed',
            accepted: 3,
            job: 'p-3-2b1f0c9e-4f7d-4a53-9a43-1c2d3e4f5a6b',
            results: [
              { index: 0, status: 'stored', seq: 41 },
              { index: 1, status: 'duplicate', seq: 41 },
              { index: 2, status: 'conflict', seq: 7 },
            ],
        }),
      },
      202: {
        description: 'Every event of the request is durably queued (with `?wait`: not all were processed in time).',
        content: json(ref('Accepted'), { status: 'accepted', accepted: 2, job: 'p-2-2b1f0c9e-4f7d-4a53-9a43-1c2d3e4f5a6b' }),
      },
      400: errorResponse('The body is not valid JSON or NDJSON, or `wait` is not a number of seconds in (0, 30].', 'invalid_json', 'line 2 is not valid JSON: Unexpected end of JSON input', { line: 2 }),
      401: unauthorized('API_KEY'),
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
      503: {
        description:
          'Redis is unreachable, the backlog is over its limit, or too many request bytes are in flight: nothing of the request was queued (`unavailable`). Or Redis did not confirm the add in time (`outcome_unknown`): the events may be queued, and retrying is safe because copies are dropped. With `?wait`, past `MAX_WAITERS` publishes waiting at once (`too_many_waiters`): nothing was queued. Retry after `Retry-After` seconds.',
        headers: { 'Retry-After': retryAfter },
        content: json(ref('Error'), { error: 'unavailable', message: 'the queue is unavailable; retry later' }),
      },
    },
  };
}
