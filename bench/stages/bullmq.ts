// Stage limit: BullMQ alone. Jobs carrying `batch` events each are added with the same
// concurrency as the API would and taken by no-op workers; the rate is what the queue moves
// when nothing else is done with the events.
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { stream } from '../workload.js';

type BullStageSpec = { redisUrl: string; events: number; batch: number; concurrency: number; workers: number };

async function runBullStage(spec: BullStageSpec) {
  const name = `stage-${randomUUID()}`;
  const producer = new Redis(spec.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection: producer });
  const s = stream({ ids: 'random', topics: 8, dupRatio: 0, seed: 5, prefix: 's' });
  const jobs = Math.ceil(spec.events / spec.batch);
  const payloads = Array.from({ length: Math.min(jobs, 64) }, () => ({ events: Array.from({ length: spec.batch }, () => s.next()) }));
  let processed = 0;
  let resolveDone: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const workers = Array.from({ length: spec.workers }, () => {
    const w = new Worker(
      name,
      async () => {
        if (++processed === jobs) resolveDone();
        return Promise.resolve();
      },
      { connection: new Redis(spec.redisUrl, { maxRetriesPerRequest: null }), concurrency: 16 },
    );
    return w;
  });
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (next < jobs) {
        const i = next++;
        await queue.add('publish', payloads[i % payloads.length]!, { removeOnComplete: true });
      }
    }),
  );
  await done;
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  await Promise.all(workers.map((w) => w.close()));
  await queue.obliterate({ force: true });
  await queue.close();
  producer.disconnect();
  return { events: jobs * spec.batch, jobs, seconds, eventsPerSecond: (jobs * spec.batch) / seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

if (/bullmq\.[jt]s$/.test(process.argv[1] ?? '') && process.send) {
  void runBullStage(JSON.parse(process.argv[2]!) as BullStageSpec).then((r) => process.send!(r, () => process.exit(0)));
}
