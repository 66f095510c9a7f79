// What every request carries, on whichever path answers it (Koa or the lean publish path):
// its id (the producer's own X-Request-Id, or this process' prefix and a counter: unique,
// and cheaper than a UUID each), its logger, and its start, for the debug line that closes
// it. One source per app, so that no two answers of a process carry the same generated id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/log.js';

export class RequestContext {
  private child: Logger | undefined;
  private readonly started = performance.now();

  constructor(
    readonly id: string,
    private readonly parent: Logger,
  ) {}

  /** The request's logger; made only when a line is written. */
  get log(): Logger {
    return (this.child ??= this.parent.child({ reqId: this.id }));
  }

  /** Seconds since the request arrived. */
  seconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** The line that closes the request, at debug level. */
  answered(method: string, path: string, status: number): void {
    if (!this.parent.isLevelEnabled('debug')) return;
    this.log.debug({ method, path, status, ms: +(performance.now() - this.started).toFixed(2) }, 'request');
  }
}

export type RequestContexts = {
  /** The context of a request just arrived; its answer gets its X-Request-Id header first. */
  open(req: IncomingMessage, res: ServerResponse): RequestContext;
};

export function requestContexts(log: Logger): RequestContexts {
  const idPrefix = randomUUID().slice(0, 8);
  let requests = 0;
  return {
    open(req, res) {
      const given = req.headers['x-request-id'];
      const id = (typeof given === 'string' && given) || `${idPrefix}-${(++requests).toString(36)}`;
      res.setHeader('X-Request-Id', id);
      return new RequestContext(id, log);
    },
  };
}
