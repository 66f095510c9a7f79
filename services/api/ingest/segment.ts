// Segment's tracking API: from a /v1/batch body (or one message at /v1/track, /v1/identify,
// ...) to one event per message, as the contract says. A message is checked here for what
// the mapping needs (its type, a track's event name, its messageId); the event it becomes
// then goes through the one event schema like any other.
import type { ValidationDetail } from '../../../shared/schema.js';

export const MESSAGE_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export type MappedMessage = { topic: unknown; event_id: unknown; timestamp: unknown; source: unknown; payload: Record<string, unknown> };

/** Where each event field comes from in a message, to name it in a validation error. */
export const MESSAGE_PATH: Record<string, (type: unknown) => string> = {
  topic: (type) => (type === 'track' ? 'event' : 'type'),
  event_id: () => 'messageId',
  timestamp: () => 'timestamp',
  source: () => 'context.library.name',
  payload: () => '',
};

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isType = (x: unknown): x is MessageType => typeof x === 'string' && (MESSAGE_TYPES as readonly string[]).includes(x);

/**
 * The messages of a body: a /v1/batch body's `batch` (its top-level `context` and
 * `integrations` apply to every message, as Segment's API merges them), or the one message
 * of a single-message path, whose type is the path's.
 */
export function messagesOf(body: unknown, pathType: MessageType | undefined): { messages: unknown[]; sentAt: unknown } | ValidationDetail {
  if (!isObject(body)) return { index: 0, path: '', message: 'the body must be a JSON object' };
  if (pathType !== undefined) return { messages: [{ ...body, type: pathType }], sentAt: undefined };
  if (!Array.isArray(body.batch)) return { index: 0, path: 'batch', message: 'a /v1/batch body must hold its messages in "batch", an array' };
  const { context, integrations } = body;
  const messages = body.batch.map((m: unknown) => {
    if (!isObject(m)) return m;
    let merged = m;
    if (isObject(context)) merged = { ...merged, context: { ...context, ...(isObject(m.context) ? m.context : {}) } };
    if (isObject(integrations)) merged = { ...merged, integrations: { ...integrations, ...(isObject(m.integrations) ? m.integrations : {}) } };
    return merged;
  });
  return { messages, sentAt: body.sentAt };
}

/** What the mapping needs from a message, each problem tied to its index. */
export function checkMessage(message: unknown, index: number): ValidationDetail[] {
  if (!isObject(message)) return [{ index, path: '', message: 'a message must be a JSON object' }];
  const problems: ValidationDetail[] = [];
  if (!isType(message.type)) problems.push({ index, path: 'type', message: `must be one of ${MESSAGE_TYPES.join(', ')}` });
  // Segment's SDKs always set one; without it a retry could not be told from a new message.
  if (message.messageId === undefined || message.messageId === null || message.messageId === '') {
    problems.push({ index, path: 'messageId', message: 'is required: it is the identity copies are dropped by' });
  }
  if (message.type === 'track' && (typeof message.event !== 'string' || message.event === '')) {
    problems.push({ index, path: 'event', message: 'is required for a track message: it names the topic' });
  }
  return problems;
}

/** A message (already checked) as an event; `sentAt` is the batch's, `receivedAt` the last resort for the timestamp. */
export function mapMessage(message: Record<string, unknown>, batchSentAt: unknown, receivedAt: string): MappedMessage {
  const context = isObject(message.context) ? message.context : {};
  const library = isObject(context.library) ? context.library : {};
  return {
    topic: message.type === 'track' ? message.event : message.type,
    event_id: message.messageId,
    timestamp: message.timestamp ?? message.sentAt ?? batchSentAt ?? receivedAt,
    source: library.name ?? 'segment',
    payload: message,
  };
}
