// The benchmark's live subscribers: N clients of GET /events/stream in a process of their
// own (so their CPU is not the API's), each checking that it gets every event once and in
// seq order, and all measuring delivery latency: receipt time minus the event's
// processed_at (set by the worker as its commit begins; the same machine's clock). A
// stream the server cuts (a reader too far behind) is resumed with Last-Event-ID and
// counted. Messages are scanned as bytes, not parsed as JSON: a hundred subscribers in one
// process must cost less than the service they measure.
import http from 'node:http';

/** `topics`: subscriber i follows topics[i % length]; none: every subscriber follows every event. */
export type SubscribersSpec = { url: string; count: number; topics?: string[] };
/** Parent to child, once the queue is drained: how many events a subscriber of every topic, and of each topic, must get. */
export type SubscribersExpect = { type: 'expect'; events: number; perTopic: Record<string, number> };
export type SubscribersResult = {
  type: 'done';
  subscribers: number;
  /** What each subscriber followed: 'every event' or 'one topic each'. */
  follows: string;
  /** Events all subscribers together had to get. */
  expected: number;
  /** Fewest and most events one subscriber got. */
  delivered: { min: number; max: number };
  /** Every subscriber got exactly `expected` events, in increasing seq order. */
  exact: boolean;
  /** Times a stream was cut by the server (a reader too far behind) and resumed with Last-Event-ID. */
  reconnects: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  cpuSeconds: number;
};

type Sub = { topic: string | undefined; want: number; count: number; last: number; ordered: boolean; reconnects: number; started: boolean; rest: Buffer | undefined };

const MAX_MS = 600_000;
const END = Buffer.from('\n\n');
const ID = Buffer.from('id: ');
const AFTER = Buffer.from(': after');

function percentile(hist: Uint32Array, total: number, p: number): number {
  const want = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let ms = 0; ms < hist.length; ms++) {
    seen += hist[ms]!;
    if (seen >= want) return ms;
  }
  return MAX_MS;
}

export async function runSubscribers(
  spec: SubscribersSpec,
  onReady: () => void,
  expected: Promise<Omit<SubscribersExpect, 'type'>>,
): Promise<SubscribersResult> {
  const cpuAtStart = process.cpuUsage();
  const hist = new Uint32Array(MAX_MS + 1);
  let samples = 0;
  let finished = false;
  const subs: Sub[] = [];
  const requests = new Set<http.ClientRequest>();
  // Events of one commit share their processed_at: parsed once, not once per event.
  const lastStamp = Buffer.alloc(24);
  let lastStampMs = 0;

  /** Messages end with a blank line; a message is `id: <seq>\ndata: <json ending in "processed_at":"<24 chars>"}>`. */
  function take(sub: Sub, chunk: Buffer, now: number, started: () => void): void {
    const buf = sub.rest === undefined ? chunk : Buffer.concat([sub.rest, chunk]);
    let pos = 0;
    for (let end = buf.indexOf(END, pos); end >= 0; end = buf.indexOf(END, pos)) {
      if (buf.compare(ID, 0, ID.length, pos, pos + ID.length) === 0) {
        let seq = 0;
        for (let i = pos + ID.length; buf[i]! >= 48 && buf[i]! <= 57; i++) seq = seq * 10 + buf[i]! - 48;
        if (!(seq > sub.last)) sub.ordered = false;
        sub.last = seq;
        sub.count++;
        if (buf.compare(lastStamp, 0, 24, end - 26, end - 2) !== 0) {
          buf.copy(lastStamp, 0, end - 26, end - 2);
          lastStampMs = Date.parse(lastStamp.toString('latin1'));
        }
        hist[Math.max(0, Math.min(MAX_MS, now - lastStampMs))]!++;
        samples++;
      } else if (buf.compare(AFTER, 0, AFTER.length, pos, pos + AFTER.length) === 0) {
        started();
      }
      pos = end + END.length;
    }
    sub.rest = pos < buf.length ? Buffer.from(buf.subarray(pos)) : undefined;
  }

  /** Opens (or reopens, after the last event received, as an EventSource would) one stream. */
  const open = (sub: Sub) =>
    new Promise<void>((resolve, reject) => {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (sub.started) headers['last-event-id'] = String(sub.last);
      const query = sub.topic === undefined ? '' : `?topic=${encodeURIComponent(sub.topic)}`;
      const req = http.get(new URL(`/events/stream${query}`, spec.url), { headers }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`subscriber: HTTP ${res.statusCode}`));
          return;
        }
        sub.rest = undefined;
        res.on('data', (chunk: Buffer) =>
          take(sub, chunk, Date.now(), () => {
            sub.started = true;
            resolve();
          }),
        );
        res.on('close', () => {
          requests.delete(req);
          if (finished) return;
          // Cut loose by the server (too far behind): resume as a browser would.
          sub.reconnects++;
          const reopen = (): void => void open(sub).catch(() => !finished && setTimeout(reopen, 250));
          reopen();
        });
      });
      req.on('error', reject);
      requests.add(req);
    });

  for (let i = 0; i < spec.count; i++) subs.push({ topic: spec.topics?.[i % spec.topics.length], want: 0, count: 0, last: 0, ordered: true, reconnects: 0, started: false, rest: undefined });
  // Connected a few at a time, as clients arriving would.
  for (let i = 0; i < subs.length; i += 20) await Promise.all(subs.slice(i, i + 20).map(open));
  onReady();

  const want = await expected;
  for (const sub of subs) sub.want = sub.topic === undefined ? want.events : (want.perTopic[sub.topic] ?? 0);
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && subs.some((s) => s.count < s.want)) await new Promise((r) => setTimeout(r, 100));
  finished = true;
  for (const req of requests) req.destroy();
  const counts = subs.map((s) => s.count);
  const used = process.cpuUsage(cpuAtStart);
  let max = 0;
  for (let ms = hist.length - 1; ms >= 0; ms--) {
    if (hist[ms]! > 0) {
      max = ms;
      break;
    }
  }
  return {
    type: 'done',
    subscribers: spec.count,
    follows: spec.topics === undefined ? 'every event' : `one of ${spec.topics.length} topics each`,
    expected: subs.reduce((n, s) => n + s.want, 0),
    delivered: { min: Math.min(...counts), max: Math.max(...counts) },
    exact: subs.every((s) => s.ordered && s.count === s.want),
    reconnects: subs.reduce((n, s) => n + s.reconnects, 0),
    latencyMs: { p50: percentile(hist, samples, 50), p90: percentile(hist, samples, 90), p99: percentile(hist, samples, 99), max },
    cpuSeconds: (used.user + used.system) / 1e6,
  };
}

/** The workers' group commits over a run, from /metrics (their heartbeats, at most 3 s old). */
export type CommitTimes = { commits: number; meanMs: number; p99UpToMs: number; meanEvents: number };

export async function commitTimes(baseUrl: string): Promise<CommitTimes | undefined> {
  const text = await fetch(`${baseUrl}/metrics`).then((r) => r.text(), () => '');
  const sum = (name: string, le?: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && (le === undefined || l.includes(`le="${le}"`)))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const count = sum('aggregator_worker_commit_seconds_count');
  if (!(count > 0)) return undefined;
  const bounds = [...new Set([...text.matchAll(/aggregator_worker_commit_seconds_bucket\{[^}]*le="([^"]+)"/g)].map((m) => m[1]!))];
  const p99 = bounds.find((le) => sum('aggregator_worker_commit_seconds_bucket', le) >= 0.99 * count) ?? '+Inf';
  return {
    commits: count,
    meanMs: (1000 * sum('aggregator_worker_commit_seconds_sum')) / count,
    p99UpToMs: p99 === '+Inf' ? Infinity : 1000 * Number(p99),
    meanEvents: sum('aggregator_worker_batch_events_sum') / Math.max(1, sum('aggregator_worker_batch_events_count')),
  };
}

/** The Markdown section for runs with and without subscribers of the same scenario. */
export function streamSection(
  rows: { name: string; subscribers: number; follows: string; endToEnd: number; publish: number; stream?: SubscribersResult; commits?: CommitTimes }[],
): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    '',
    'Live stream (GET /events/stream): the same scenario with N subscribers, run in one client process of their own. Delivery latency is receipt time minus the event\'s `processed_at`, which the worker sets as its group commit begins, so it includes that commit (its duration is shown beside: mean, and the bucket bound under which 99% fall); one clock, same machine.',
    '',
    '| scenario | subscribers | following | end to end events/s | publish events/s | publish vs mean of runs with none | group commit mean / p99 ms (events) | delivery p50 / p90 / p99 / max ms | every subscriber got every event once, in order | streams cut and resumed | subscriber process CPU s |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |',
  ];
  for (const r of rows) {
    // Against the mean of the runs without subscribers: on a shared machine, runs drift.
    const bases = rows.filter((x) => x.name === r.name && x.subscribers === 0 && x.follows === r.follows);
    const base = bases.reduce((n, x) => n + x.publish, 0) / bases.length;
    const ratio = bases.length > 0 ? `${((100 * r.publish) / base).toFixed(0)}%` : '–';
    const s = r.stream;
    lines.push(
      `| ${r.name} | ${r.subscribers} | ${r.follows} | ${fmt(r.endToEnd)} | ${fmt(r.publish)} | ${r.subscribers === 0 ? '(baseline)' : ratio} | ${r.commits ? `${r.commits.meanMs.toFixed(0)} / ≤ ${r.commits.p99UpToMs} (${fmt(r.commits.meanEvents)})` : '–'} | ${s ? `${s.latencyMs.p50} / ${s.latencyMs.p90} / **${s.latencyMs.p99}** / ${s.latencyMs.max}` : '–'} | ${s ? (s.exact ? `yes (${fmt(s.expected)} in all)` : `**no** (${fmt(s.delivered.min)} to ${fmt(s.delivered.max)} per subscriber; ${fmt(s.expected)} due in all)`) : '–'} | ${s ? s.reconnects : '–'} | ${s ? s.cpuSeconds.toFixed(1) : '–'} |`,
    );
  }
  lines.push('', 'Targets: delivery p99 < 250 ms with 100 subscribers; publishing throughput with subscribers >= 90% of the same run without.');
  return lines.join('\n') + '\n';
}

// As a child process: the spec comes as argv[2]; 'ready' once every stream is open, then
// the result after the parent says how many events to expect.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!) && process.send) {
  const spec = JSON.parse(process.argv[2]!) as SubscribersSpec;
  const expected = new Promise<SubscribersExpect>((resolve) => process.on('message', (m: SubscribersExpect) => m.type === 'expect' && resolve(m)));
  runSubscribers(spec, () => process.send!({ type: 'ready' }), expected)
    .then((result) => process.send!(result, () => process.exit(0)))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
