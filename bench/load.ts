// The load generator, run as its own process so that its CPU is not the API's: sends
// events over keep-alive HTTP as producers would, retries 503s, records every latency.
// Every request is built before the clock starts (the event stream is deterministic), so
// that what the load costs while it runs is little more than its sockets.
import { Connection, prepareRequest } from './http-client.js';
import { stream, type IdOrder } from './workload.js';

export type LoadSpec = {
  url: string;
  events: number;
  batch: number;
  concurrency: number;
  dupRatio: number;
  topics: number;
  ids: IdOrder;
  seed: number;
  prefix: string;
  /** Ask for the verdicts, waiting up to this many seconds (POST /publish?wait=s): latency is then publish to processed. */
  wait?: number;
  /** Paced: events per second asked; request i is sent no sooner than its share of the run (none: as fast as answers come). */
  rate?: number;
};

export type LoadProgress = { type: 'progress'; accepted: number; requests: number; retries: number };
export type LoadResult = {
  type: 'done';
  accepted: number;
  originals: number;
  requests: number;
  retries: number;
  errors: number;
  /** With `wait`: events answered 200, processed within the wait. */
  processed: number;
  seconds: number;
  /** CPU seconds the load generator itself used. */
  cpuSeconds: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
};

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Every request of the run, in order, and how many events each carries. */
function prepare(spec: LoadSpec, url: URL) {
  const s = stream({ ids: spec.ids, topics: spec.topics, dupRatio: spec.dupRatio, seed: spec.seed, prefix: spec.prefix });
  const path = url.pathname + url.search;
  const requests: Buffer[] = [];
  const sizes: number[] = [];
  for (let done = 0; done < spec.events; ) {
    const n = Math.min(spec.batch, spec.events - done);
    const events = Array.from({ length: n }, () => s.next());
    const body = n === 1 && spec.batch === 1 ? JSON.stringify(events[0]) : JSON.stringify({ events });
    requests.push(prepareRequest(url.host, path, 'application/json', body));
    sizes.push(n);
    done += n;
  }
  return { requests, sizes, originals: s.originals() };
}

/** Builds the run's requests, waits for `ready()` to resolve, then sends them. */
async function runLoad(spec: LoadSpec, onProgress: (p: LoadProgress) => void, ready: () => Promise<void> = () => Promise.resolve()): Promise<LoadResult> {
  const url = new URL(spec.wait === undefined ? '/publish' : `/publish?wait=${spec.wait}`, spec.url);
  const { requests, sizes, originals } = prepare(spec, url);
  await ready();
  const totalRequests = requests.length;
  const latencies = new Float64Array(totalRequests);
  let issued = 0;
  let accepted = 0;
  let retries = 0;
  let errors = 0;
  let recorded = 0;
  let processed = 0;
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const ticker = setInterval(() => onProgress({ type: 'progress', accepted, requests: recorded, retries }), 250);

  async function lane(): Promise<void> {
    const connection = new Connection(Number(url.port), url.hostname);
    while (issued < totalRequests) {
      const i = issued++;
      const n = sizes[i]!;
      if (spec.rate !== undefined) {
        const due = started + (i * spec.batch * 1000) / spec.rate;
        if (due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
      }
      for (;;) {
        const t0 = performance.now();
        const res = await connection.request(requests[i]!).catch(() => undefined);
        // 200: processed within the wait; 202: accepted (with a wait: not processed in time).
        if (res?.status === 202 || res?.status === 200) {
          if (res.status === 200) processed += n;
          latencies[recorded++] = performance.now() - t0;
          accepted += n;
          break;
        }
        if (res === undefined) errors++;
        else if (res.status !== 503) throw new Error(`publish answered ${res.status}`);
        retries++;
        await new Promise((r) => setTimeout(r, Math.min(1000, (res === undefined ? 0.05 : (res.retryAfter ?? 1)) * 1000)));
      }
    }
    connection.close();
  }
  await Promise.all(Array.from({ length: spec.concurrency }, lane));
  clearInterval(ticker);
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.slice(0, recorded).sort();
  return {
    type: 'done',
    accepted,
    originals,
    requests: recorded,
    retries,
    errors,
    processed,
    seconds,
    cpuSeconds: (() => {
      const used = process.cpuUsage(cpuAtStart);
      return (used.user + used.system) / 1e6;
    })(),
    latencyMs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? 0 },
  };
}

// As a child process: the spec comes as argv[2]; once its requests are built it says
// { type: 'ready' } and waits for the parent's 'go'; progress and results go back over IPC.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!) && process.send) {
  const spec = JSON.parse(process.argv[2]!) as LoadSpec;
  const go = () =>
    new Promise<void>((resolve) => {
      process.once('message', () => resolve());
      process.send!({ type: 'ready' });
    });
  runLoad(spec, (p) => process.send!(p), go)
    .then((result) => {
      process.send!(result, () => process.exit(0));
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
