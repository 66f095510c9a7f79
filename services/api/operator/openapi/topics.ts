// GET /topics in the OpenAPI document: its path and the shape of its page.
import { DEFAULT_TOPICS_LIMIT, MAX_TOPICS_LIMIT } from '../../read/topics.js';
import { READ_AUTH, errorResponse, json, ref, unauthorized, type Json } from './parts.js';

export function topicsSchemas(): Json {
  return {
    TopicsPage: {
      type: 'object',
      required: ['topics', 'next_after'],
      properties: {
        topics: {
          type: 'array',
          items: {
            type: 'object',
            required: ['topic', 'events', 'dropped', 'conflicts'],
            properties: {
              topic: { type: 'string' },
              events: { type: 'integer', minimum: 0, description: 'Events stored.' },
              dropped: { type: 'integer', minimum: 0, description: 'Copies dropped, conflicts included.' },
              conflicts: { type: 'integer', minimum: 0, description: 'Dropped copies whose content differed from the stored one.' },
            },
          },
        },
        next_after: { type: ['string', 'null'], description: 'Pass as `after` for the next page; null on the last.' },
      },
    },
  };
}

export function topicsPaths(): Json {
  return {
    '/topics': {
      get: {
        operationId: 'listTopics',
        tags: ['read'],
        summary: 'Topics by name, with their counts',
        description:
          "Every topic with a stored event, in name order, a page at a time: pass the answer's `next_after` as `after` until it is null. `/stats` lists at most 1,000 names; this lists any number. Needs the read key when the API runs with `READ_API_KEY`.",
        ...READ_AUTH,
        parameters: [
          { name: 'after', in: 'query', required: false, description: 'A topic name: only topics after it.', schema: { type: 'string', minLength: 1 } },
          {
            name: 'limit',
            in: 'query',
            required: false,
            description: 'Topics per page.',
            schema: { type: 'integer', minimum: 1, maximum: MAX_TOPICS_LIMIT, default: DEFAULT_TOPICS_LIMIT },
          },
        ],
        responses: {
          200: {
            description: 'A page of topics.',
            content: json(ref('TopicsPage'), { topics: [{ topic: 'orders', events: 8, dropped: 2, conflicts: 1 }], next_after: null }),
          },
          400: errorResponse('A bad `limit`, or an empty `after`.', 'bad_request', `limit must be a whole number from 1 to ${MAX_TOPICS_LIMIT}`),
          401: unauthorized('READ_API_KEY'),
        },
      },
    },
  };
}
