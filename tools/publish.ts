// `npm run publish -- ...`: a producer on the command line. Sends a file, stdin or generated
// load to POST /publish in batches, the way a careful producer does: it retries what may
// not have arrived (503, 5xx, network errors, timeouts), honouring Retry-After, and never
// what was refused (4xx), since sending the same request again cannot change that answer.
// Copies made by retries are the aggregator's job to drop.
//
// It talks to the service over HTTP only, and reuses shared/schema.ts to check a file
// before sending any of it.
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { validateEvents, type Event } from '../shared/schema.js';

const HELP = `Usage: npm run publish -- [options]

Sends events to the aggregator's POST /publish, in batches, with retries.
Without --file it generates events.

Input
  --file PATH        Events to send: a JSON array, {"events": [...]}, one JSON event,
                     or NDJSON (one event per line); detected from the content.
                     "-" reads stdin. Every event is validated before anything is sent.
  --count N          Generated events to send (default 1000; 0 = until Ctrl-C).
  --duplicates R     Share of generated events that are copies of an earlier one
                     (same topic and event_id), from 0 to 0.99 (default 0). Exactly
                     floor(N * R) copies are sent, spread evenly.
  --topics N         Topics to spread generated events over, round robin (default 3).

Sending
  --url URL          The API (default http://127.0.0.1:8080).
  --batch N          Events per request (default 100). With --rate, a request also holds
                     at most a quarter second's worth of events.
  --rate N           Events per second (default 0: as fast as the API takes them).
  --concurrency N    Requests in flight at once (default 4).
  --api-key KEY      Sent as "Authorization: Bearer KEY" (default: $API_KEY).
  --wait S           Ask the API to wait up to S seconds (0 < S <= 30) for each request's
                     events to be processed, and count what became of them: stored,
                     duplicate, conflict (a copy whose content differs from the stored one).
  -h, --help         This text.

Retries: a request answered 503 or another 5xx, or with no answer (network error, no
answer within 30 s), is sent again after Retry-After if the API gave one, else after an
exponential backoff with jitter (0.25 s doubling up to 10 s), up to 10 attempts. A 4xx is
never retried: its events count as failed and the API's error is printed.

While sending, a progress bar with rate and ETA is drawn on a terminal (stderr); otherwise
a progress line is printed every 5 s. At the end a summary (sent, accepted, retried,
failed) goes to stdout. The exit code is 0 only if every event was accepted, 1 if some
were not, 2 for bad options or input.
`;

const MAX_ATTEMPTS = 10;
const REQUEST_TIMEOUT_MS = 30_000;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const RETRY_AFTER_MAX_MS = 60_000;
const TOPIC_NAMES = ['orders', 'payments', 'shipments', 'signups', 'logins', 'clicks', 'searches', 'refunds', 'reviews', 'alerts'];

class UsageError extends Error {}

type Options = {
  url: string;
  file: string | undefined;
  count: number;
  rate: number;
  batch: number;
  duplicates: number;
  topics: number;
  concurrency: number;
  apiKey: string | undefined;
  wait: number | undefined;
};

function number(name: string, text: string | undefined, fallback: number, min: number, max: number, whole = true): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || (whole && !Number.isInteger(n)) || n < min || n > max) {
    throw new UsageError(`--${name} must be ${whole ? 'a whole number' : 'a number'} from ${min} to ${max} (got "${text}")`);
  }
  return n;
}

function positiveWait(text: string): number {
  const n = number('wait', text, 0, 0, 30, false);
  if (n <= 0) throw new UsageError(`--wait must be a number of seconds above 0 and at most 30 (got "${text}")`);
  return n;
}

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        file: { type: 'string' },
        count: { type: 'string' },
        rate: { type: 'string' },
        batch: { type: 'string' },
        duplicates: { type: 'string' },
        topics: { type: 'string' },
        concurrency: { type: 'string' },
        'api-key': { type: 'string' },
        wait: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const a = parsed.values;
  if (a.help) return 'help';
  const url = a.url ?? 'http://127.0.0.1:8080';
  if (!/^https?:\/\//.test(url) || !URL.canParse(url)) throw new UsageError(`--url must be an http:// or https:// URL (got "${url}")`);
  if (a.file !== undefined) {
    for (const generatorOnly of ['count', 'duplicates', 'topics'] as const) {
      if (a[generatorOnly] !== undefined) throw new UsageError(`--${generatorOnly} is for generated events; it cannot go with --file`);
    }
  }
  return {
    url: url.replace(/\/+$/, ''),
    file: a.file,
    count: number('count', a.count, 1000, 0, Number.MAX_SAFE_INTEGER),
    rate: number('rate', a.rate, 0, 0, 10_000_000, false),
    batch: number('batch', a.batch, 100, 1, 1_000_000),
    duplicates: number('duplicates', a.duplicates, 0, 0, 0.99, false),
    topics: number('topics', a.topics, 3, 1, 100_000),
    concurrency: number('concurrency', a.concurrency, 4, 1, 1000),
    apiKey: a['api-key'] ?? (env.API_KEY || undefined),
    wait: a.wait === undefined ? undefined : positiveWait(a.wait),
  };
}

// ---- input ---------------------------------------------------------------------------

/** The events a file holds, in its order, with the line each came from (NDJSON). */
function parseInput(text: string): { items: unknown[]; lines: number[] | undefined } {
  const trimmed = text.trim();
  if (trimmed === '') throw new UsageError('the input holds no events');
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    let whole: unknown;
    let isJson = true;
    try {
      whole = JSON.parse(trimmed);
    } catch (err) {
      // A JSON array must parse whole; `{` may still start the first line of NDJSON.
      if (trimmed.startsWith('[')) throw new UsageError(`the input is not valid JSON: ${(err as Error).message}`);
      isJson = false;
    }
    if (isJson) {
      if (Array.isArray(whole)) return { items: whole, lines: undefined };
      const events = (whole as { events?: unknown }).events;
      return { items: Array.isArray(events) ? events : [whole], lines: undefined };
    }
  }
  const items: unknown[] = [];
  const lines: number[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      items.push(JSON.parse(line));
    } catch (err) {
      throw new UsageError(`line ${i + 1} is not valid JSON: ${(err as Error).message}`);
    }
    lines.push(i + 1);
  });
  return { items, lines };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readInput(file: string): Promise<Event[]> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file === '-' ? 'stdin' : file}: ${(err as Error).message}`);
  }
  const { items, lines } = parseInput(text);
  if (items.length === 0) throw new UsageError('the input holds no events');
  const result = validateEvents(items);
  if (!result.ok) {
    const where = (i: number) => (lines ? `line ${lines[i]}` : `event ${i}`);
    const shown = result.details.slice(0, 10).map((d) => `  ${where(d.index)}: ${d.path || 'event'} ${d.message}`);
    const more = result.details.length > shown.length ? `\n  ... and ${result.details.length - shown.length} more` : '';
    throw new UsageError(`the input has invalid events; nothing was sent:\n${shown.join('\n')}${more}`);
  }
  return result.events;
}

type Source = { total: number | undefined; take(n: number): Event[] };

function fileSource(events: Event[]): Source {
  let at = 0;
  return {
    total: events.length,
    take(n) {
      const out = events.slice(at, at + n);
      at += out.length;
      return out;
    },
  };
}

/**
 * Generated events: unique ids per run, topics round robin, and copies spread evenly:
 * event i is a copy when floor((i + 1) R) > floor(i R), which makes exactly floor(N R) of
 * them, never the first. A copy repeats one of the recent originals, as a retry would.
 */
function generatedSource(opts: Options): Source {
  const run = randomBytes(4).toString('hex');
  const topics = Array.from({ length: opts.topics }, (_, i) => TOPIC_NAMES[i] ?? `topic-${i + 1}`);
  const recent: Event[] = [];
  let i = 0;
  let originals = 0;
  const endless = opts.count === 0;
  return {
    total: endless ? undefined : opts.count,
    take(n) {
      const out: Event[] = [];
      while (out.length < n && (endless || i < opts.count)) {
        const copy = i > 0 && Math.floor((i + 1) * opts.duplicates) > Math.floor(i * opts.duplicates);
        if (copy && recent.length > 0) {
          out.push(recent[Math.floor(Math.random() * recent.length)]!);
        } else {
          const e: Event = {
            topic: topics[originals % topics.length]!,
            event_id: `${run}-${originals}`,
            timestamp: new Date().toISOString(),
            source: 'publish-cli',
            payload: { n: originals, run, amount: Math.round(Math.random() * 10_000) / 100 },
          };
          originals++;
          recent.push(e);
          if (recent.length > 1000) recent.shift();
          out.push(e);
        }
        i++;
      }
      return out;
    },
  };
}

// ---- sending -------------------------------------------------------------------------

type Totals = { sent: number; requests: number; accepted: number; retried: number; failed: number };

/** With --wait: what became of the accepted events; `unconfirmed` were not processed in time. */
type Verdicts = { stored: number; duplicate: number; conflict: number; unconfirmed: number };

type Outcome = { kind: 'accepted'; accepted: number; verdicts?: Record<string, number> } | { kind: 'refused'; message: string } | { kind: 'retry'; message: string; waitMs: number | undefined };

/** Waits `ms`, or less if `signal` aborts; its abort listener goes when the wait ends, whichever way. */
const sleep = (ms: number, signal?: AbortSignal) =>
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

async function sendOnce(opts: Options, body: string, events: number): Promise<Outcome> {
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

function backoffMs(attempt: number): number {
  // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): publishers
  // that failed together do not all come back at the same instant.
  return Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

// ---- progress ------------------------------------------------------------------------

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x: number) => String(x).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function progressText(t: Totals, total: number | undefined, elapsedS: number, tty: boolean): string {
  const done = t.accepted + t.failed;
  const rate = elapsedS > 0 ? t.accepted / elapsedS : 0;
  const tail = `${fmt(rate)} ev/s  retried ${fmt(t.retried)}  failed ${fmt(t.failed)}`;
  if (total === undefined) return `${fmt(done)} events  ${tail}`;
  const share = total > 0 ? done / total : 1;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  const counts = `${fmt(done)}/${fmt(total)} events`;
  if (!tty) return `${(share * 100).toFixed(0)}%  ${counts}  ${tail}  ETA ${duration(eta)}`;
  const width = 24;
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}%  ${counts}  ${tail}  ETA ${duration(eta)}`;
}

// ---- main ----------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: Options | 'help';
  let source: Source;
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
    if (opts === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    source = opts.file !== undefined ? fileSource(await readInput(opts.file)) : generatedSource(opts);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`publish: ${err.message}\n(npm run publish -- --help explains every option)\n`);
    return 2;
  }
  const o = opts;
  const tty = process.stderr.isTTY === true;
  const totals: Totals = { sent: 0, requests: 0, accepted: 0, retried: 0, failed: 0 };
  const verdicts: Verdicts = { stored: 0, duplicate: 0, conflict: 0, unconfirmed: 0 };
  const stop = new AbortController();
  let interrupted = false;
  let shownErrors = 0;
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;

  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\npublish: stopping: no new requests; a second Ctrl-C quits at once\n');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const say = (line: string) => process.stderr.write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  let shownRetries = 0;
  const reportRetry = (events: number, message: string, waitMs: number) => {
    shownRetries++;
    if (shownRetries <= 5) say(`publish: retrying ${fmt(events)} event(s) in ${(waitMs / 1000).toFixed(1)} s: ${message}`);
    else if (shownRetries === 6) say('publish: more retries; not showing each (the summary counts them)');
  };
  const reportError = (events: number, message: string) => {
    shownErrors++;
    if (shownErrors <= 10) say(`publish: ${fmt(events)} event(s) failed: ${message}`);
    else if (shownErrors === 11) say('publish: more failures; not showing each');
  };

  // With --rate, each request starts at the instant its first event is due.
  const perRequest = o.rate > 0 ? Math.min(o.batch, Math.max(1, Math.ceil(o.rate / 4))) : o.batch;
  let scheduled = 0;

  async function sender(): Promise<void> {
    while (!stop.signal.aborted) {
      if (o.rate > 0) {
        const dueMs = (scheduled / o.rate) * 1000;
        scheduled += perRequest;
        await sleep(dueMs - (performance.now() - started), stop.signal);
        if (stop.signal.aborted) return;
      }
      const events = source.take(perRequest);
      if (events.length === 0) return;
      totals.sent += events.length;
      const body = JSON.stringify({ events });
      for (let attempt = 1; ; attempt++) {
        totals.requests++;
        const outcome = await sendOnce(o, body, events.length);
        if (outcome.kind === 'accepted') {
          totals.accepted += outcome.accepted;
          if (outcome.verdicts === undefined) verdicts.unconfirmed += outcome.accepted;
          else for (const k of ['stored', 'duplicate', 'conflict'] as const) verdicts[k] += outcome.verdicts[k] ?? 0;
          break;
        }
        if (outcome.kind === 'refused') {
          totals.failed += events.length;
          reportError(events.length, outcome.message);
          break;
        }
        if (attempt >= MAX_ATTEMPTS || stop.signal.aborted) {
          totals.failed += events.length;
          reportError(events.length, `${outcome.message} (gave up after ${attempt} attempt(s))`);
          break;
        }
        totals.retried++;
        const waitMs = outcome.waitMs ?? backoffMs(attempt);
        reportRetry(events.length, outcome.message, waitMs);
        await sleep(waitMs, stop.signal);
      }
    }
  }

  const draw = () => {
    const text = progressText(totals, source.total, elapsed(), tty);
    process.stderr.write(tty ? `\r\x1b[2K${text}` : `publish: ${text}\n`);
  };
  const progress = setInterval(draw, tty ? 200 : 5000);
  await Promise.all(Array.from({ length: o.concurrency }, () => sender()));
  clearInterval(progress);
  if (tty) {
    draw();
    process.stderr.write('\n');
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const seconds = elapsed();
  const unsent = source.total === undefined ? 0 : source.total - totals.sent;
  process.stdout.write(
    [
      `publish: ${interrupted ? 'interrupted' : 'done'} after ${seconds.toFixed(2)} s, to ${o.url}`,
      `  sent      ${fmt(totals.sent)} events in ${fmt(totals.requests)} requests${unsent > 0 ? ` (${fmt(unsent)} not sent)` : ''}`,
      `  accepted  ${fmt(totals.accepted)}`,
      `  retried   ${fmt(totals.retried)} requests`,
      `  failed    ${fmt(totals.failed)}`,
      `  rate      ${fmt(seconds > 0 ? totals.accepted / seconds : 0)} events/s`,
      ...(o.wait === undefined
        ? []
        : [
            `  stored    ${fmt(verdicts.stored)}`,
            `  duplicate ${fmt(verdicts.duplicate)}`,
            `  conflict  ${fmt(verdicts.conflict)}`,
            `  not processed within ${o.wait} s: ${fmt(verdicts.unconfirmed)}`,
          ]),
      '',
    ].join('\n'),
  );
  return totals.failed === 0 && unsent === 0 && totals.accepted === totals.sent && !interrupted ? 0 : 1;
}

process.exitCode = await main();
