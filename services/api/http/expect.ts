// The `Expect` header, answered before any body is read. Node's default sends `100 Continue`
// to every `Expect: 100-continue`, so a client would upload a body that is then refused
// (no key, too large), and answers any other expectation with a bare 417 without JSON.
// Here a request that will be refused is refused at once, in the contract's JSON, and only
// one that may succeed is told to continue.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { bearerCheck } from './auth.js';
import { isPublish } from './budgets.js';
import { HttpError } from './errors.js';
import type { EarlyAnswer } from './server.js';

export type ExpectOptions = { apiKey: string | undefined; readApiKey: string | undefined; maxBodyBytes: number; answer: EarlyAnswer };

/** The refusal a request would get before its body matters, if any. */
function refusal(req: IncomingMessage, o: ExpectOptions, checkKey: (h: string) => void, checkReadKey: (h: string) => void): HttpError | undefined {
  const path = (req.url ?? '/').split('?')[0]!;
  try {
    if (isPublish(req)) checkKey(req.headers.authorization ?? '');
    if (req.method === 'GET' && (path === '/events' || path.startsWith('/events/') || path === '/stats' || path === '/topics')) {
      checkReadKey(req.headers.authorization ?? '');
    }
  } catch (err) {
    return err as HttpError;
  }
  // As read-body.ts: a declared length counts only when it is the body's own (not encoded).
  const encoded = req.headers['content-encoding'] !== undefined && req.headers['content-encoding'] !== 'identity';
  if (!encoded && Number(req.headers['content-length']) > o.maxBodyBytes) {
    return new HttpError(413, 'payload_too_large', `the body is larger than ${o.maxBodyBytes} bytes`);
  }
  return undefined;
}

/** `serve`: the request may succeed; it writes `100 Continue` once the request has its room. */
export function handleExpect(server: Server, o: ExpectOptions, serve: (req: IncomingMessage, res: ServerResponse) => void): void {
  const checkKey = bearerCheck(o.apiKey, 'API_KEY');
  const checkReadKey = bearerCheck(o.readApiKey, 'READ_API_KEY');
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const refused = refusal(req, o, checkKey, checkReadKey);
    // The body was never asked for: the connection cannot carry a next request after it.
    if (refused !== undefined) return o.answer(req, res, refused, true);
    serve(req, res);
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    o.answer(req, res, new HttpError(417, 'expectation_failed', `Expect: ${String(req.headers.expect)} is not supported; only 100-continue is`), true);
  });
}
