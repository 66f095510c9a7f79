// The JetStream reference's publisher, run as its own process so that its CPU is not the
// server's: NATS JetStream's deduplicating publish (each message carries its identity in
// the `Nats-Msg-Id` header; the stream drops an id it has seen within its duplicate
// window), on the same event stream as the bench's load (same JSON bodies, same share of
// re-sent ids). `inFlight` publishers each wait for their ack before the next message, as
// the load generator's lanes wait for their answer.
import { connect, nanos, StorageType } from 'nats';
import { stream } from './workload.js';

export type JetStreamSpec = { servers: string; stream: string; messages: number; dupRatio: number; inFlight: number; seed: number };
export type JetStreamRun = {
  type: 'done';
  messages: number;
  /** Acks that said `duplicate`, and the re-sent ids the stream held: equal when every copy was dropped. */
  duplicates: number;
  resent: number;
  /** Messages the stream holds after the run: one per identity when dedup is exact. */
  stored: number;
  originals: number;
  seconds: number;
  cpuSeconds: number;
  latencyMs: { p50: number; p99: number };
};

async function publishAll(spec: JetStreamSpec, ready: () => Promise<void>): Promise<JetStreamRun> {
  const nc = await connect({ servers: spec.servers });
  const jsm = await nc.jetstreamManager();
  // A window far longer than the run: every copy falls within it.
  await jsm.streams.add({ name: spec.stream, subjects: [`${spec.stream}.>`], storage: StorageType.File, duplicate_window: nanos(10 * 60_000) });
  const js = nc.jetstream();
  const s = stream({ ids: 'random', topics: 8, dupRatio: spec.dupRatio, seed: spec.seed, prefix: 'js' });
  const messages = Array.from({ length: spec.messages }, () => {
    const e = s.next();
    return { subject: `${spec.stream}.${e.topic}`, id: `${e.topic}/${e.event_id}`, body: Buffer.from(JSON.stringify(e)) };
  });
  const originals = s.originals();
  await ready();
  const latencies = new Float64Array(spec.messages);
  let next = 0;
  let duplicates = 0;
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const lane = async () => {
    while (next < messages.length) {
      const i = next++;
      const m = messages[i]!;
      const t0 = performance.now();
      const ack = await js.publish(m.subject, m.body, { msgID: m.id, timeout: 60_000 });
      latencies[i] = performance.now() - t0;
      if (ack.duplicate) duplicates++;
    }
  };
  await Promise.all(Array.from({ length: spec.inFlight }, lane));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpuAtStart);
  const info = await jsm.streams.info(spec.stream);
  await jsm.streams.delete(spec.stream);
  await nc.drain();
  const sorted = latencies.sort();
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  return {
    type: 'done',
    messages: spec.messages,
    duplicates,
    resent: spec.messages - originals,
    stored: info.state.messages,
    originals,
    seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    latencyMs: { p50: at(0.5), p99: at(0.99) },
  };
}

// As a child process (bench/children.ts's protocol): 'ready' once the messages are built,
// then the run after the parent's 'go'.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!) && process.send) {
  const spec = JSON.parse(process.argv[2]!) as JetStreamSpec;
  const go = () =>
    new Promise<void>((resolve) => {
      process.once('message', () => resolve());
      process.send!({ type: 'ready' });
    });
  publishAll(spec, go)
    .then((result) => process.send!(result, () => process.exit(0)))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
