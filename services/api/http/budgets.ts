// Which budget a socket counts against, by what its request asks for. A stream (GET
// /events/stream) counts against MAX_SUBSCRIBERS and a publish waiting for its results
// (`?wait`) against MAX_WAITERS, from the request's arrival until its answer is over; every
// other socket, idle ones included, against MAX_CONNECTIONS (connections.ts). What lasts (a
// stream for hours, a waiter up to 30 s) thus never takes the producers' room: 1,000 open
// streams against a 1,024-socket cap had producers lose a third of their publishes to
// sockets closed at the cap (issue 23). The API holds at most the three budgets' sum.
// The fan-out refuses streams past MAX_SUBSCRIBERS itself (subscribers.ts); waiters past
// MAX_WAITERS are refused here, before any of the body is read, so nothing is enqueued.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/log.js';
import { bearerCheck, type BearerCheck } from './auth.js';
import type { ConnectionCap } from './connections.js';
import { unavailable } from './errors.js';
import type { EarlyAnswer } from './server.js';

type BudgetOptions = { maxWaiters: number; apiKey: string | undefined; log: Logger; answer: EarlyAnswer };

/** A waiter's slot frees as soon as any waiting publish gets its results: seconds at most. */
const WAITERS_RETRY_AFTER_SECONDS = 2;

/** The path as the router matches it: case aside, and one trailing slash. */
function routePath(url: string, q: number): string {
  const path = (q === -1 ? url : url.slice(0, q)).toLowerCase();
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/** Whether the request is a POST to /publish or /publish/batch, as the router matches paths. */
export function isPublish(req: IncomingMessage): boolean {
  if (req.method !== 'POST') return false;
  const url = req.url ?? '';
  const path = routePath(url, url.indexOf('?'));
  return path === '/publish' || path === '/publish/batch';
}

/** What a request's socket counts against while it lasts, when it is not MAX_CONNECTIONS. */
function lastingKind(req: IncomingMessage): 'stream' | 'waiter' | undefined {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (req.method === 'GET') return routePath(url, q) === '/events/stream' ? 'stream' : undefined;
  if (q === -1 || !isPublish(req)) return undefined;
  return new URLSearchParams(url.slice(q + 1)).has('wait') ? 'waiter' : undefined;
}

export class SocketBudgets {
  private waiters = 0;
  private refused = 0;
  private readonly checkKey: BearerCheck;

  constructor(
    private readonly cap: ConnectionCap,
    private readonly o: BudgetOptions,
  ) {
    this.checkKey = bearerCheck(o.apiKey, 'API_KEY');
  }

  /** Counts the request against its budget; false when it was answered here (MAX_WAITERS reached). */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    const kind = lastingKind(req);
    if (kind === undefined) return true;
    if (kind === 'waiter') {
      if (this.waiters >= this.o.maxWaiters) {
        // A request without the key is told so, as it would be with room to wait.
        if (!this.hasKey(req)) return true;
        this.refuse(req, res);
        return false;
      }
      this.waiters++;
      res.once('close', () => this.waiters--);
    }
    this.cap.setAsideUntilAnswered(res);
    return true;
  }

  private hasKey(req: IncomingMessage): boolean {
    try {
      this.checkKey(req.headers.authorization ?? '');
      return true;
    } catch {
      return false;
    }
  }

  private refuse(req: IncomingMessage, res: ServerResponse): void {
    const { maxWaiters, log } = this.o;
    if (this.refused++ % 1000 === 0) log.warn({ maxWaiters, refused: this.refused }, 'waiting publishes at MAX_WAITERS: refusing more with 503');
    const err = unavailable(
      `this API process already holds its ${maxWaiters} publishes waiting for results (MAX_WAITERS); retry, or publish without ?wait`,
      WAITERS_RETRY_AFTER_SECONDS,
      'too_many_waiters',
    );
    // The body is left unread: Node discards it after the answer, and the socket may carry
    // the next request; one whose body was never asked for (Expect: 100-continue) cannot.
    this.o.answer(req, res, err, req.headers.expect !== undefined);
  }
}
