// Bearer keys: API_KEY guards publishing, READ_API_KEY every read of event data. Keys are
// compared in constant time and never logged (shared/log.ts redacts the header).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import { HttpError } from './errors.js';

export type Guard = (ctx: Context, next: Next) => Promise<void>;

function sameSecret(given: string, expected: string): boolean {
  // Hash both so the comparison takes the same time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Throws the 401 unless `key` is unset or `authorization` (the header, '' when absent) is `Bearer <key>`. */
export type BearerCheck = (authorization: string) => void;

export function bearerCheck(key: string | undefined, variable: 'API_KEY' | 'READ_API_KEY'): BearerCheck {
  const what = variable === 'API_KEY' ? 'API key' : 'read key (READ_API_KEY)';
  return (header) => {
    if (key === undefined) return;
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m || !sameSecret(m[1]!.trim(), key)) {
      throw new HttpError(401, 'unauthorized', header ? `the ${what} is wrong` : `send Authorization: Bearer <${variable}>`, {}, { 'WWW-Authenticate': 'Bearer' });
    }
  };
}

/** Lets a request through when `key` is unset, or when it carries `Authorization: Bearer <key>`. */
export function requireBearer(key: string | undefined, variable: 'API_KEY' | 'READ_API_KEY'): Guard {
  const check = bearerCheck(key, variable);
  return async (ctx, next) => {
    check(ctx.get('authorization'));
    await next();
  };
}
