// The operator's paths of the OpenAPI document: health, readiness, metrics, this document,
// its page and the dashboard.
import { json, ref, type Json } from './parts.js';

export function operatePaths(): Json {
  return {
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
          "Prometheus text format. The counts mirror `/stats` (read through the same code); publish requests are counted per API process; workers' figures come from their heartbeats, labelled `worker`. Open, like `/health` and `/ready`: counts only, no event data.",
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
  };
}
