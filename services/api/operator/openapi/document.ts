// The OpenAPI 3.1 document served at GET /openapi.json, assembled from its parts: the event
// (event.ts, generated from shared/schema.ts), the publish, read and operate paths, and the
// answers' shapes (schemas.ts).
import { ingestPaths, ingestSchemas, segmentWriteKey } from './ingest.js';
import { operatePaths } from './operate.js';
import type { Json, OpenApiOptions } from './parts.js';
import { publishOperation } from './publish.js';
import { readPaths } from './read.js';
import { answerSchemas } from './schemas.js';
import { topicsPaths, topicsSchemas } from './topics.js';

export type { OpenApiOptions };

export function buildOpenApi(opts: OpenApiOptions): Json {
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
      '/publish': { post: publishOperation(opts, 'publish', 'Publish events') },
      '/publish/batch': { post: publishOperation(opts, 'publishBatch', 'Publish events (the path many producers use for batches)') },
      ...readPaths(opts),
      ...topicsPaths(),
      ...operatePaths(),
      ...ingestPaths(opts),
    },
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: '`API_KEY` for publishing, when set; `READ_API_KEY` for reads of event data, when set.',
        },
        segmentWriteKey,
      },
      schemas: { ...answerSchemas(opts), ...topicsSchemas(), ...ingestSchemas() },
    },
  };
}
