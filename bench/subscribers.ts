// The benchmark's live subscribers: N clients of GET /events/stream in a process of their
// own (so their CPU is not the API's), each checking that it gets every event once and in
// seq order, and all measuring delivery latency: from the end of the worker's commit that
// stored an event to its receipt here. The commit's end comes from the workers' own commit
// notices (`committed_at`, the same machine's clock), read here from Redis as the API reads
// them. A stream the server cuts (a reader too far behind) is resumed with Last-Event-ID and
// counted. Messages are scanned, not parsed as JSON: a hundred subscribers in one process
// must cost less than the service they measure.
import http from 'node:http';
import { Redis } from 'ioredis';
import { commitsChannel, parseNotice } from '../shared/notices.js';

/** `topics`: subscriber i follows topics[i % length]; none: every subscriber follows every event. */
export type SubscribersSpec = { url: string; redisUrl: string; queueName: string; count: number; topics?: string[] };
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
  /** From the end of the commit that stored an event to its receipt. */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** Deliveries whose commit notice never arrived (not in the latency figures). */
  unmeasured: number;
  cpuSeconds: number;
};

type Sub = { topic: string | undefined; want: number; count: number; last: number; ordered: boolean; reconnects: number; started: boolean; rest: string };

const MAX_MS = 600_000;
const ID_LENGTH = 'id: '.length;

/**
 * When each commit ended, by the highest seq it made visible. The commit that stored seq s
 * is the first one whose seq reaches s: commits hand out seqs in order. A delivery can
 * arrive before its notice reaches this process (the API may hear first): it waits here.
 */
function commitClock() {
  const seqs: number[] = [];
  const times: number[] = [];
  let waiting: { seq: number; at: number }[] = [];
  let hit = { above: 0, upTo: 0, time: 0 };
  const firstAtLeast = (s: number) => {
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqs[mid]! >= s) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  return {
    commit(seq: number, at: number, record: (ms: number) => void) {
      const i = firstAtLeast(seq);
      if (seqs[i] === seq) return;
      seqs.splice(i, 0, seq);
      times.splice(i, 0, at);
      if (seq < hit.upTo) hit = { above: 0, upTo: 0, time: 0 };
      if (waiting.length === 0) return;
      const still: typeof waiting = [];
      for (const w of waiting) {
        const j = firstAtLeast(w.seq);
        if (j < seqs.length) record(w.at - times[j]!);
        else still.push(w);
      }
      waiting = still;
    },
    /** The latency of seq received at `at`, or undefined until its commit is known. */
    latency(seq: number, at: number): number | undefined {
      // Most deliveries fall in the same commit as the one before.
      if (seq > hit.above && seq <= hit.upTo) return at - hit.time;
      const i = firstAtLeast(seq);
      if (i < seqs.length) {
        hit = { above: i > 0 ? seqs[i - 1]! : 0, upTo: seqs[i]!, time: times[i]! };
        return at - times[i]!;
      }
      waiting.push({ seq, at });
      return undefined;
    },
    unresolved: () => waiting.length,
  };
}

function percentile(hist: Uint32Array, total: number, p: number): number {
  const want = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let ms = 0; ms < hist.length; ms++) {
    seen += hist[ms]!;
    if (seen >= want) return ms;
  }
  return MAX_MS;
}

async function runSubscribers(
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
  const record = (ms: number) => {
    hist[Math.max(0, Math.min(MAX_MS, Math.round(ms)))]!++;
    samples++;
  };
  const clock = commitClock();
  const notices = new Redis(spec.redisUrl, { maxRetriesPerRequest: null });
  notices.on('message', (_channel: string, message: string) => {
    const n = parseNotice(message);
    if (n?.committed_at !== undefined && n.seq > 0) clock.commit(n.seq, n.committed_at, record);
  });
  await notices.subscribe(commitsChannel(spec.queueName));

  /** Messages end with a blank line; a message is `id: <seq>\ndata: <the event as JSON>`. */
  function message(sub: Sub, text: string, pos: number, now: number, started: () => void): void {
    // 'id: ' char by char: cheaper than a startsWith per message.
    if (text.charCodeAt(pos) === 105 && text.charCodeAt(pos + 1) === 100 && text.charCodeAt(pos + 2) === 58 && text.charCodeAt(pos + 3) === 32) {
      let seq = 0;
      for (let i = pos + ID_LENGTH, c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) seq = seq * 10 + c - 48;
      if (!(seq > sub.last)) sub.ordered = false;
      sub.last = seq;
      sub.count++;
      const ms = clock.latency(seq, now);
      if (ms !== undefined) record(ms);
    } else if (text.startsWith(': after', pos)) {
      started();
    }
  }

  /**
   * A chunk as a one-byte string (latin1: one char per byte, so the UTF-8 inside events
   * cannot fake a line break): V8's own string search finds each message's end four times
   * faster than Buffer.indexOf calls, which cross into C++ every time.
   */
  function take(sub: Sub, chunk: Buffer, now: number, started: () => void): void {
    const text = sub.rest + chunk.toString('latin1');
    let pos = 0;
    for (let end = text.indexOf('\n\n', pos); end >= 0; end = text.indexOf('\n\n', pos)) {
      message(sub, text, pos, now, started);
      pos = end + 2;
    }
    sub.rest = pos < text.length ? text.slice(pos) : '';
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
        sub.rest = '';
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

  for (let i = 0; i < spec.count; i++) subs.push({ topic: spec.topics?.[i % spec.topics.length], want: 0, count: 0, last: 0, ordered: true, reconnects: 0, started: false, rest: '' });
  // Connected a few at a time, as clients arriving would.
  for (let i = 0; i < subs.length; i += 20) await Promise.all(subs.slice(i, i + 20).map(open));
  onReady();

  const want = await expected;
  for (const sub of subs) sub.want = sub.topic === undefined ? want.events : (want.perTopic[sub.topic] ?? 0);
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && subs.some((s) => s.count < s.want)) await new Promise((r) => setTimeout(r, 100));
  finished = true;
  for (const req of requests) req.destroy();
  // The last commits' notices may still be on their way.
  for (let i = 0; i < 20 && clock.unresolved() > 0; i++) await new Promise((r) => setTimeout(r, 50));
  notices.disconnect();
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
    unmeasured: clock.unresolved(),
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
  rows: {
    name: string;
    subscribers: number;
    follows: string;
    endToEnd: number;
    publish: number;
    stream?: SubscribersResult;
    commits?: CommitTimes;
    /** CPU seconds by process (the subscribers' client included), and the run's length. */
    cpu: Record<string, number>;
    seconds: number;
  }[],
): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    '',
    'Live stream (GET /events/stream): the same scenario with N subscribers, run in one client process of their own. Delivery latency runs from the end of the worker\'s commit that stored an event (the `committed_at` of its commit notice) to the event\'s receipt by a subscriber; one clock, same machine. The group commits\' own duration is shown beside (mean, and the bucket bound under which 99% fall).',
    '',
    '| scenario | subscribers | following | end to end events/s | publish events/s | publish vs mean of runs with none | group commit mean / p99 ms (events) | delivery p50 / p90 / p99 / max ms | every subscriber got every event once, in order | streams cut and resumed | subscriber process CPU s | API CPU s | CPU s, all processes (cores busy) | runs with none over this run, CPU s per event |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const total = (cpu: Record<string, number>) => Object.values(cpu).reduce((n, v) => n + v, 0);
  for (const r of rows) {
    // Against the mean of the runs without subscribers: on a shared machine, runs drift.
    const bases = rows.filter((x) => x.name === r.name && x.subscribers === 0 && x.follows === r.follows);
    const base = bases.reduce((n, x) => n + x.publish, 0) / bases.length;
    const ratio = bases.length > 0 ? `${((100 * r.publish) / base).toFixed(0)}%` : '–';
    // Same events in every run: while the cores are full, the rate can be at most this
    // share of the runs without subscribers, whatever the stream's latency.
    const baseCpu = bases.reduce((n, x) => n + total(x.cpu), 0) / bases.length;
    const cpuShare = r.subscribers === 0 || bases.length === 0 ? '(baseline)' : `${((100 * baseCpu) / total(r.cpu)).toFixed(0)}%`;
    const s = r.stream;
    lines.push(
      `| ${r.name} | ${r.subscribers} | ${r.follows} | ${fmt(r.endToEnd)} | ${fmt(r.publish)} | ${r.subscribers === 0 ? '(baseline)' : ratio} | ${r.commits ? `${r.commits.meanMs.toFixed(0)} / ≤ ${r.commits.p99UpToMs} (${fmt(r.commits.meanEvents)})` : '–'} | ${s ? `${s.latencyMs.p50} / ${s.latencyMs.p90} / **${s.latencyMs.p99}** / ${s.latencyMs.max}${s.unmeasured > 0 ? ` (${fmt(s.unmeasured)} without a notice)` : ''}` : '–'} | ${s ? (s.exact ? `yes (${fmt(s.expected)} in all)` : `**no** (${fmt(s.delivered.min)} to ${fmt(s.delivered.max)} per subscriber; ${fmt(s.expected)} due in all)`) : '–'} | ${s ? s.reconnects : '–'} | ${s ? s.cpuSeconds.toFixed(1) : '–'} | ${r.cpu.api ?? '–'} | ${total(r.cpu).toFixed(1)} (${(total(r.cpu) / r.seconds).toFixed(2)}) | ${cpuShare} |`,
    );
  }
  lines.push(
    '',
    'The last column is a ceiling measured in the run: the CPU per event of the runs without subscribers over that of this run (every process, the subscribers\' client included, on the same cores). Where the cores are busy in both, the publishing rate with subscribers cannot exceed that share of the rate without.',
    '',
    'Targets: delivery p99 < 250 ms with 100 subscribers; publishing throughput with subscribers >= 90% of the same run without.',
  );
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
