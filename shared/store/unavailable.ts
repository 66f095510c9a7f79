// The store out of reach (a database restarting, a connection reset, a network cut): not a
// bug in the request, not a reason to stop the process. Readers answer 503 with
// Retry-After; a worker keeps its jobs unacknowledged and commits them once it is back.

/** Seconds a client is told to wait before it asks again. */
export const STORE_RETRY_AFTER_SECONDS = 2;

export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** Socket-level failures: the server or the path to it is away. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * PostgreSQL's own answers that mean "not now" rather than "wrong": class 08 (connection
 * exception), an administrator's or a crash's shutdown (57P01 to 57P03, the last one also
 * "starting up"), too many connections (53300), and a database that does not exist (3D000:
 * dropped, about to be re-created).
 */
function isUnavailableSqlState(code: string): boolean {
  return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300' || code === '3D000';
}

/** What node-postgres says when a session ends under it or cannot begin in time. */
const DRIVER_MESSAGES = [
  /^Connection terminated/,
  /timeout exceeded when trying to connect/,
  /Client has encountered a connection error and is not queryable/,
  /Connection terminated due to connection timeout/,
  /^read ECONNRESET/,
];

/** Whether an error from a networked store means it is out of reach for now. */
export function isStoreUnreachable(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || isUnavailableSqlState(code))) return true;
  if (err instanceof AggregateError && err.errors.some(isStoreUnreachable)) return true;
  return DRIVER_MESSAGES.some((re) => re.test(err.message));
}
