// A NUL character (%00) in a read's URL: no topic or event id can hold one (no control
// characters), and PostgreSQL refuses it in text outright (a 500 before this), so it is the
// client's mistake on either store: a 400, before any route reads the store.
import type { Middleware } from 'koa';
import { HttpError } from './errors.js';

/** `%00` in the path or the query of anything but a publish (whose body is checked on its own). */
export function rejectNul(): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' && /%00/.test(ctx.url)) {
      throw new HttpError(400, 'invalid_query', 'the URL holds a NUL character (%00), which no topic, event id or cursor can hold');
    }
    await next();
  };
}
