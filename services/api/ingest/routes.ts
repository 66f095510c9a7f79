// POST /v1/logs (OTLP/HTTP logs) and POST /v1/batch, /v1/track, ... (Segment's tracking
// API): producers that already exist, publishing through the same intake as POST /publish
// (take.ts). Registered by the app in one call.
import { createHash, timingSafeEqual } from 'node:crypto';
import type Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { ValidationDetail } from '../../../shared/schema.js';
import { requireBearer } from '../http/auth.js';
import { HttpError } from '../http/errors.js';
import type { Backlog } from '../publish/backlog.js';
import type { Enqueuer } from '../publish/enqueue.js';
import { decodeUtf8, depthExceededAt } from '../publish/json-text.js';
import { decodeLogs } from './otlp-decode.js';
import { mapLogsRequest } from './otlp-map.js';
import { encodeLogsResponse } from './otlp-proto.js';
import { checkMessage, mapMessage, messagesOf, MESSAGE_PATH, MESSAGE_TYPES, type MessageType } from './segment.js';
import { Intake, sortItems, type TakeLimits } from './take.js';

export type IngestDeps = {
  config: TakeLimits & { apiKey: string | undefined };
  backlog: Backlog;
  enqueuer: Enqueuer;
  /** The publish routes' metrics middleware, put first: every answer is counted and timed. */
  observe: Middleware<{ acceptedTopics?: readonly string[] }>;
};

/** How many problems an OTLP partial success spells out in its message. */
const MESSAGE_PROBLEMS = 5;

const mediaType = (header: string) => header.split(';')[0]!.trim().toLowerCase();

/** A JSON body's value; 400 for bytes that are not JSON, or nest past what the API parses. */
function parseJson(bytes: Uint8Array): unknown {
  const text = decodeUtf8(bytes);
  if (text.trim() === '') throw new HttpError(400, 'invalid_json', 'the body is empty');
  if (depthExceededAt(text) !== -1) throw new HttpError(400, 'invalid_json', 'the body nests too deep');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, 'invalid_json', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

function otlpHandler(intake: Intake): Middleware {
  return async (ctx: Context) => {
    const media = mediaType(ctx.get('content-type'));
    const encoding = media === 'application/x-protobuf' ? 'protobuf' : media === 'application/json' ? 'json' : undefined;
    if (encoding === undefined) {
      throw new HttpError(415, 'unsupported_media_type', `content type "${ctx.get('content-type')}" is not accepted: send application/x-protobuf or application/json`);
    }
    const receivedAt = new Date().toISOString();
    const { events, rejected, rejectedCount } = await intake.take(ctx.req, (bytes) =>
      sortItems(encoding === 'json' ? mapLogsRequest(parseJson(bytes), receivedAt) : decodeLogs(bytes, receivedAt)),
    );
    (ctx.state as { acceptedTopics?: readonly string[] }).acceptedTopics = events.map((e) => e.topic);
    const errorMessage =
      rejectedCount === 0
        ? ''
        : `${rejectedCount} log record(s) rejected: ${rejected
            .slice(0, MESSAGE_PROBLEMS)
            .map((d) => `record ${d.index}: ${d.path === '' ? '' : `${d.path} `}${d.message}`)
            .join('; ')}`;
    ctx.status = 200;
    if (encoding === 'protobuf') {
      ctx.type = 'application/x-protobuf';
      ctx.body = Buffer.from(encodeLogsResponse(rejectedCount, errorMessage));
    } else {
      ctx.body = rejectedCount === 0 ? {} : { partialSuccess: { rejectedLogRecords: rejectedCount, errorMessage } };
    }
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Segment's SDKs send the write key as HTTP Basic's user name (password empty): it must be API_KEY when that is set. */
function requireWriteKey(key: string | undefined) {
  return async (ctx: Context, next: Next) => {
    if (key !== undefined) {
      const header = ctx.get('authorization');
      const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
      const user = m ? Buffer.from(m[1]!, 'base64').toString('utf8').split(':')[0]! : undefined;
      if (user === undefined || !sameSecret(user, key)) {
        throw new HttpError(
          401,
          'unauthorized',
          header ? 'the write key is wrong' : 'send the write key (API_KEY) as the HTTP Basic user name',
          {},
          { 'WWW-Authenticate': 'Basic realm="segment"' },
        );
      }
    }
    await next();
  };
}

/**
 * Any problem refuses the whole request with 400, as Segment's API answers a request it
 * will not take; its SDKs drop a batch answered 400 rather than retry it forever.
 */
function segmentHandler(intake: Intake, pathType: MessageType | undefined): Middleware {
  return async (ctx: Context) => {
    if (mediaType(ctx.get('content-type')) !== 'application/json') {
      throw new HttpError(415, 'unsupported_media_type', `content type "${ctx.get('content-type')}" is not accepted: send application/json`);
    }
    const receivedAt = new Date().toISOString();
    const { events } = await intake.take(ctx.req, (bytes) => {
      const found = messagesOf(parseJson(bytes), pathType);
      if (!('messages' in found)) throw invalid([found]);
      if (found.messages.length === 0) throw new HttpError(400, 'empty_batch', 'the batch holds no messages');
      const problems = found.messages.flatMap((m, i) => checkMessage(m, i));
      if (problems.length > 0) throw invalid(problems);
      const messages = found.messages as Record<string, unknown>[];
      const sorted = sortItems(messages.map((m) => mapMessage(m, found.sentAt, receivedAt)));
      if (sorted.rejectedCount > 0) {
        throw invalid(sorted.rejected.map((d) => ({ ...d, path: eventPathToMessage(d.path, messages[d.index]!.type) })));
      }
      return sorted;
    });
    (ctx.state as { acceptedTopics?: readonly string[] }).acceptedTopics = events.map((e) => e.topic);
    ctx.status = 200;
    ctx.body = { success: true };
  };
}

/** An event field's path as the message field it came from (`payload.x` is the message's `x`). */
function eventPathToMessage(path: string, type: unknown): string {
  const [field, ...rest] = path.split('.');
  if (field === 'payload') return rest.join('.');
  const from = MESSAGE_PATH[field ?? ''];
  return from === undefined ? path : from(type);
}

function invalid(details: ValidationDetail[]): HttpError {
  const messages = new Set(details.map((d) => d.index)).size;
  return new HttpError(400, 'validation_failed', `${messages} message(s) are invalid; nothing was accepted`, { details: details.slice(0, 1000) });
}

export function registerIngestRoutes<S>(router: Router<S>, deps: IngestDeps): void {
  const { config } = deps;
  const intake = new Intake(config, deps.backlog, deps.enqueuer);
  const observe = deps.observe as Middleware;
  router.post('/v1/logs', observe, requireBearer(config.apiKey, 'API_KEY'), otlpHandler(intake));
  const writeKey = requireWriteKey(config.apiKey);
  router.post('/v1/batch', observe, writeKey, segmentHandler(intake, undefined));
  for (const type of MESSAGE_TYPES) router.post(`/v1/${type}`, observe, writeKey, segmentHandler(intake, type));
}
