// Errors that know their HTTP meaning, in the spirit of Koa's `expose`: a 4xx message is
// for the client; a 5xx keeps its detail in the log and answers with a generic message.

export class HttpError extends Error {
  readonly expose: boolean;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
    this.expose = status < 500 || status === 503;
  }
}

/** Redis down, a command timed out, or the backlog is full: the producer should retry later. */
export function unavailable(message: string, retryAfterSeconds: number): HttpError {
  return new HttpError(503, 'unavailable', message, {}, { 'Retry-After': String(retryAfterSeconds) });
}

/** The error code a status gets when nothing more specific was said. */
export function codeForStatus(status: number): string {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 422:
      return 'unprocessable_entity';
    case 501:
      return 'not_implemented';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal_error' : 'error';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
