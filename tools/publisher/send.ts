// The publisher CLI's sending: one request, and what its answer means (accepted, refused, or retry and when).
import { REQUEST_TIMEOUT_MS, BACKOFF_BASE_MS, BACKOFF_MAX_MS, RETRY_AFTER_MAX_MS, type Options } from './options.js';


export type Totals = { sent: number; requests: number; accepted: number; retried: number; failed: number };

/** With --wait: what became of the accepted events; `unconfirmed` were not processed in time. */
export type Verdicts = { stored: number; duplicate: number; conflict: number; unconfirmed: number };

export type Outcome = { kind: 'accepted'; accepted: number; verdicts?: Record<string, number> } | { kind: 'refused'; message: string } | { kind: 'retry'; message: string; waitMs: number | undefined };

/** Waits `ms`, or less if `signal` aborts; its abort listener goes when the wait ends, whichever way. */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });

/** Retry-After in ms: seconds or an HTTP date; undefined when absent or unreadable. */
function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  if (/^\d+$/.test(header.trim())) return Math.min(RETRY_AFTER_MAX_MS, Number(header.trim()) * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.min(RETRY_AFTER_MAX_MS, Math.max(0, at - now));
}

export async function sendOnce(opts: Options, body: string, events: number): Promise<Outcome> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (opts.apiKey !== undefined) headers.authorization = `Bearer ${opts.apiKey}`;
  let res: Response;
  let text: string;
  try {
    const query = opts.wait === undefined ? '' : `?wait=${opts.wait}`;
    res = await fetch(`${opts.url}/publish${query}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    text = await res.text();
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { kind: 'retry', message: why, waitMs: undefined };
  }
  let answer: { accepted?: unknown; error?: unknown; message?: unknown; results?: unknown } = {};
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    // not JSON: a proxy's page, say; the status decides
  }
  if (res.status === 202) return { kind: 'accepted', accepted: typeof answer.accepted === 'number' ? answer.accepted : events };
  if (res.status === 200 && Array.isArray(answer.results)) {
    const verdicts: Record<string, number> = {};
    for (const r of answer.results as { status?: unknown }[]) {
      const status = String(r.status);
      verdicts[status] = (verdicts[status] ?? 0) + 1;
    }
    return { kind: 'accepted', accepted: typeof answer.accepted === 'number' ? answer.accepted : events, verdicts };
  }
  const message = `${res.status}${typeof answer.error === 'string' ? ` ${answer.error}` : ''}${
    typeof answer.message === 'string' ? `: ${answer.message}` : text && !answer.error ? `: ${text.slice(0, 200)}` : ''
  }`;
  if (res.status >= 500) return { kind: 'retry', message, waitMs: retryAfterMs(res.headers.get('retry-after')) };
  return { kind: 'refused', message };
}

export function backoffMs(attempt: number): number {
  // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): publishers
  // that failed together do not all come back at the same instant.
  return Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
}
