// Small pieces every part of the OpenAPI document is written with.

export type Json = Record<string, unknown>;

export type OpenApiOptions = {
  maxBatchEvents: number;
  maxBodyBytes: number;
  maxEventsLimit: number;
  defaultEventsLimit: number;
};

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
export const json = (schema: Json, example?: unknown) => ({
    'application/json': { schema, ...(example === undefined ? {} : { example }) },
});
export const errorResponse = (description: string, code: string, message: string, extra: Json = {}) => ({
    description,
    content: json(ref('Error'), { error: code, message, ...extra }),
});

/** Reads are open unless the API runs with READ_API_KEY. */
export const READ_AUTH = {
  security: [{}, { bearerAuth: [] }],
};


export const unauthorized = (variable: 'API_KEY' | 'READ_API_KEY') =>
  errorResponse(`The key (\`${variable}\`) is missing or wrong.`, 'unauthorized', `send Authorization: Bearer <${variable}>`);

export const retryAfter = { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 0 } };
