// The publisher CLI's options: its help, its limits, and the command line read into them.
import { parseArgs } from 'node:util';

export const HELP = `Usage: npm run publish -- [options]

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

export const MAX_ATTEMPTS = 10;
export const REQUEST_TIMEOUT_MS = 30_000;
export const BACKOFF_BASE_MS = 250;
export const BACKOFF_MAX_MS = 10_000;
export const RETRY_AFTER_MAX_MS = 60_000;
export const TOPIC_NAMES = ['orders', 'payments', 'shipments', 'signups', 'logins', 'clicks', 'searches', 'refunds', 'reviews', 'alerts'];

export class UsageError extends Error {}

export type Options = {
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

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
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
