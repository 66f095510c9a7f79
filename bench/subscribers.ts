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
import { commitClock, MAX_MS, percentile } from './commit-clock.js';

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

const ID_LENGTH = 'id: '.length;

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
    follows: spec.topics === undefined ? 'every event' : spec.topics.length === 1 ? `${spec.topics[0]} (all of them)` : `one of ${spec.topics.length} topics each`,
    expected: subs.reduce((n, s) => n + s.want, 0),
    delivered: { min: Math.min(...counts), max: Math.max(...counts) },
    exact: subs.every((s) => s.ordered && s.count === s.want),
    reconnects: subs.reduce((n, s) => n + s.reconnects, 0),
    latencyMs: { p50: percentile(hist, samples, 50), p90: percentile(hist, samples, 90), p99: percentile(hist, samples, 99), max },
    unmeasured: clock.unresolved(),
    cpuSeconds: (used.user + used.system) / 1e6,
  };
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
