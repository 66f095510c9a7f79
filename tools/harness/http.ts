// A producer's view of the API: plain HTTP, for tests, the benchmark and the chaos run.
import { waitFor } from './wait.js';

export type Reply = { status: number; body: any; headers: Headers };

export async function request(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { contentType?: string; headers?: Record<string, string>; raw?: boolean } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = opts.raw ? (body as string) : JSON.stringify(body);
    headers['content-type'] = opts.contentType ?? 'application/json';
  }
  const res = await fetch(baseUrl + path, { method, headers, body: payload });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the test will say so
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export const publish = (baseUrl: string, body: unknown, opts?: Parameters<typeof request>[4]) =>
  request(baseUrl, 'POST', '/publish', body, opts);

export const get = (baseUrl: string, path: string, headers?: Record<string, string>) =>
  request(baseUrl, 'GET', path, undefined, { headers });

export type Stats = {
  received: number;
  unique_processed: number;
  duplicate_dropped: number;
  pending: number | null;
  topics: string[];
  uptime_seconds: number;
  [more: string]: unknown;
};

export async function stats(baseUrl: string): Promise<Stats> {
  const r = await get(baseUrl, '/stats');
  if (r.status !== 200) throw new Error(`/stats answered ${r.status}`);
  return r.body as Stats;
}

/** Waits until the queue is drained and exactly `received` events are accounted for. */
export async function drained(baseUrl: string, received: number, timeoutMs = 30_000): Promise<Stats> {
  return waitFor(
    async () => {
      const s = await stats(baseUrl);
      return s.pending === 0 && s.received === received && s.unique_processed + s.duplicate_dropped === received && s;
    },
    { what: `${received} events processed`, timeoutMs },
  );
}

/** Reads every stored event by following next_after. */
export async function allEvents(baseUrl: string, topic?: string): Promise<any[]> {
  const out: any[] = [];
  let after = 0;
  for (;;) {
    const q = new URLSearchParams({ limit: '1000', after: String(after) });
    if (topic !== undefined) q.set('topic', topic);
    const r = await get(baseUrl, `/events?${q.toString()}`);
    if (r.status !== 200) throw new Error(`/events answered ${r.status}: ${JSON.stringify(r.body)}`);
    out.push(...r.body.events);
    if (r.body.next_after === null) return out;
    after = r.body.next_after;
  }
}
