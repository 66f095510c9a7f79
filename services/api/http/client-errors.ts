// Errors Node's HTTP parser meets before Koa sees a request (a malformed request line, a
// bad Content-Length, headers too large, a client too slow) answered in the contract's
// JSON, not Node's bare status line. Node hands them to 'clientError' with the socket
// alone, so the answer is written as raw HTTP/1.1, then the connection is closed: after
// such an error the parser cannot tell where a next request would start.
// https://nodejs.org/docs/latest-v20.x/api/http.html#event-clienterror
import type { Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../shared/log.js';
import { HttpError, errorAnswer } from './errors.js';
import { rawJson } from './json-answer.js';

/** What Node's parser reports, as the error the contract answers with. */
function answerFor(err: NodeJS.ErrnoException & { reason?: string }): HttpError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new HttpError(408, 'request_timeout', 'the request did not arrive in time (HEADERS_TIMEOUT_MS for its headers, REQUEST_TIMEOUT_MS for all of it)');
    case 'HPE_HEADER_OVERFLOW':
      return new HttpError(431, 'headers_too_large', 'the request headers are too large');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new HttpError(413, 'payload_too_large', 'the chunk extensions are too large');
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return new HttpError(400, 'bad_request', 'the Content-Length header is not valid');
    default:
      return new HttpError(400, 'bad_request', `the request is not valid HTTP/1.1${err.reason ? `: ${err.reason}` : ''}`);
  }
}

/** How long a closing socket may take to read its answer before it is cut. */
const LINGER_MS = 1000;

export function answerClientErrors(server: Server, log: Logger): void {
  const answered = new WeakSet<Duplex>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // The client is gone, or it was answered already (a slow socket is reported on every
    // sweep of the timeouts until it is closed).
    if (err.code === 'ECONNRESET' || !socket.writable || answered.has(socket)) {
      socket.destroy();
      return;
    }
    // An answer already under way cannot be replaced by another on the same socket.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    const answer = errorAnswer(answerFor(err), log);
    log.debug({ code: err.code, status: answer.status }, 'client error');
    socket.end(rawJson(answer));
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  });
}
