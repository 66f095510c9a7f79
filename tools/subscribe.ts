// `npm run subscribe -- ...`: a subscriber on the command line. Follows GET /events/stream
// and prints each stored event as one line of JSON (NDJSON) on stdout, for a terminal or a
// pipe; what it says about itself goes to stderr. A dropped connection is resumed from the
// last event printed (Last-Event-ID), so a pipe sees every event once, in seq order.
import { parseArgs } from 'node:util';
import { createSseParser } from './harness/sse.js';

const HELP = `Usage: npm run subscribe -- [options]

Follows the aggregator's live stream (GET /events/stream) and prints every stored event
as one line of JSON on stdout (NDJSON), in seq order, each exactly once.

  --url URL        The API (default http://127.0.0.1:8080).
  --topic T        Only events of this topic.
  --after N        Start after this seq: 0 for every stored event first (default: only
                   events stored from now on).
  --count N        Exit after N events (default: run until interrupted).
  --api-key KEY    Sent as "Authorization: Bearer KEY" (default: $READ_API_KEY).
  -h, --help       This text.

A dropped connection, a 5xx answer (503 over the subscriber limit included) or a network
error is retried after Retry-After when given, else after a backoff of 0.25 s doubling up
to 10 s with jitter, resuming after the last event printed (Last-Event-ID). A connection
silent for 45 s (the server sends a comment every 15 s) counts as dropped. A 4xx answer
(a bad option, a missing or wrong key) is final.

Status lines go to stderr. Exit codes: 0 when interrupted, when --count is reached or when
stdout is closed (e.g. piped into head); 1 when the API refuses the subscription; 2 for
bad options.
`;

const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const SILENCE_MS = 45_000;

class UsageError extends Error {}

type Options = { url: string; topic: string | undefined; after: number | undefined; count: number; apiKey: string | undefined };

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  let a;
  try {
    a = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        topic: { type: 'string' },
        after: { type: 'string' },
        count: { type: 'string' },
        'api-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (a.help) return 'help';
  const url = (a.url ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(url) || !URL.canParse(url)) throw new UsageError(`--url must be an http:// or https:// URL (got "${url}")`);
  if (a.topic === '') throw new UsageError('--topic must not be empty');
  const whole = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d{1,15}$/.test(text)) throw new UsageError(`--${name} must be a whole number, 0 or more (got "${text}")`);
    return Number(text);
  };
  return {
    url,
    topic: a.topic,
    after: whole('after', a.after),
    count: whole('count', a.count) ?? 0,
    apiKey: a['api-key'] ?? (env.READ_API_KEY || undefined),
  };
}

const status = (line: string) => process.stderr.write(`subscribe: ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Why a connection ended: retry (after `waitMs` if the server said), or stop for good. */
type Outcome = { retry: true; waitMs?: number; why: string } | { retry: false; code: number };

async function main(): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`subscribe: ${err.message}\n\n${HELP}`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const o = opts;
  // A reader that has gone (head, a closed pipe) is the normal end of a pipeline.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    status(`stdout: ${err.message}`);
    process.exit(1);
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));

  // Where the stream resumes: the last event printed, else the start the server named.
  let cursor = o.after;
  let printed = 0;
  let attempt = 0;

  async function connectOnce(): Promise<Outcome> {
    const query = o.topic === undefined ? '' : `?topic=${encodeURIComponent(o.topic)}`;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (cursor !== undefined) headers['last-event-id'] = String(cursor);
    if (o.apiKey !== undefined) headers.authorization = `Bearer ${o.apiKey}`;
    const abort = new AbortController();
    let silence = setTimeout(() => abort.abort(), SILENCE_MS);
    const heard = () => {
      clearTimeout(silence);
      silence = setTimeout(() => abort.abort(), SILENCE_MS);
    };
    try {
      const res = await fetch(`${o.url}/events/stream${query}`, { headers, signal: abort.signal });
      if (res.status !== 200) {
        const body = await res.text().catch(() => '');
        const retryAfter = Number(res.headers.get('retry-after'));
        const waitMs = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined;
        if (res.status >= 500 || res.status === 408 || res.status === 429) return { retry: true, waitMs, why: `HTTP ${res.status} ${body.trim()}` };
        status(`refused: HTTP ${res.status} ${body.trim()}`);
        return { retry: false, code: 1 };
      }
      status(`connected to ${o.url}${o.topic === undefined ? '' : ` (topic ${o.topic})`}${cursor === undefined ? '' : `, after seq ${cursor}`}`);
      attempt = 0;
      let done = false;
      let backpressure = false;
      const parser = createSseParser(
        (m) => {
          if (done) return;
          // The data is one line of JSON already: printed as it came.
          const more = process.stdout.write(`${m.data}\n`);
          if (m.id !== undefined && /^\d+$/.test(m.id)) cursor = Number(m.id);
          printed++;
          if (o.count > 0 && printed >= o.count) done = true;
          if (!more) backpressure = true;
        },
        (comment) => {
          const start = /^after (\d+)$/.exec(comment);
          if (start && cursor === undefined) {
            cursor = Number(start[1]);
            // Without --after the stream starts at "now": say so, or a quiet terminal looks broken.
            status(`waiting for new events (stored after seq ${cursor}); to print the events already stored first, add --after 0`);
          }
        },
      );
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        heard();
        parser.push(chunk);
        if (done) return { retry: false, code: 0 };
        if (backpressure) {
          // Not reading while stdout is full: the server then cuts a reader too far behind,
          // and the next connection resumes where this one stopped.
          await new Promise((r) => process.stdout.once('drain', r));
          backpressure = false;
        }
      }
      return { retry: true, why: 'the server ended the stream' };
    } catch (err) {
      const e = err as Error & { cause?: { message?: string } };
      return { retry: true, why: abort.signal.aborted ? `no data for ${SILENCE_MS / 1000} s` : (e.cause?.message ?? e.message) };
    } finally {
      clearTimeout(silence);
      abort.abort();
    }
  }

  for (;;) {
    const outcome = await connectOnce();
    if (!outcome.retry) return outcome.code;
    attempt++;
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
    const waitMs = outcome.waitMs ?? backoff / 2 + Math.random() * (backoff / 2);
    status(`${outcome.why}; reconnecting in ${(waitMs / 1000).toFixed(1)} s${cursor === undefined ? '' : ` after seq ${cursor}`}`);
    await sleep(waitMs);
  }
}

main().then(
  (code) => {
    // Exit once stdout has taken everything written.
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    status(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
