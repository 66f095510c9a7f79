// The one writer of JSON answers: the lean publish path's, every JSON answer of the Koa app
// (http/koa-shell.ts hands them here instead of to Koa's respond), the refusals of
// `Expect` (expect.ts), and, as raw HTTP/1.1, the errors Node's parser meets before there
// is a request (client-errors.ts). Headers go in the order Koa gave them before: whatever
// the answer set already (X-Request-Id first), its own, then Content-Type and
// Content-Length; `close` adds Connection: close last.
import { STATUS_CODES, type ServerResponse } from 'node:http';

/** An answer: its status, its own headers and its JSON body. */
export type JsonAnswer = { status: number; headers?: Record<string, string>; body: unknown };

const JSON_TYPE = 'application/json; charset=utf-8';

export function writeJson(res: ServerResponse, { status, headers, body }: JsonAnswer, close = false): void {
  // As Koa: nothing more is written to a socket that cannot take it, nor a second head
  // after an answer under way (a stream that failed after it began).
  if (res.headersSent || res.writableEnded || (res.socket !== null && !res.socket.writable)) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.statusCode = status;
  // Koa's status setter set a message for the status a route chose before it threw.
  res.statusMessage = STATUS_CODES[status] ?? '';
  if (headers !== undefined) for (const k in headers) res.setHeader(k, headers[k]!);
  res.setHeader('Content-Type', JSON_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (close) res.setHeader('Connection', 'close');
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** The answer as raw HTTP/1.1, for a socket with no response object; the connection closes after it. */
export function rawJson({ status, headers, body }: JsonAnswer): string {
  const text = JSON.stringify(body);
  const own = Object.entries(headers ?? {}).map(([k, v]) => `${k}: ${v}`);
  return [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    ...own,
    `Content-Type: ${JSON_TYPE}`,
    `Content-Length: ${Buffer.byteLength(text)}`,
    'Connection: close',
    '',
    text,
  ].join('\r\n');
}
