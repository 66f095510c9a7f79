// Request ids: the producer's own (X-Request-Id), or this process' prefix and a counter:
// unique, and cheaper than a UUID each. One source per app, shared by the Koa path and the
// lean publish path, so that no two answers of a process carry the same generated id.
import { randomUUID } from 'node:crypto';

export type RequestIds = {
  /** The id of a request whose X-Request-Id header is `given` (undefined or '' when absent). */
  of(given: string | undefined): string;
};

export function createRequestIds(): RequestIds {
  const idPrefix = randomUUID().slice(0, 8);
  let requests = 0;
  return { of: (given) => given || `${idPrefix}-${(++requests).toString(36)}` };
}
