// Stage limit: the store's commit rate on its own, at a given table size, with the
// workers' settings and batch shape (jobs of `batch` events, `jobsPerCommit` per commit).
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import { newJobId } from '../../shared/queue.js';
import { stream, type IdOrder } from '../workload.js';

type StoreStageSpec = {
  dataDir: string;
  events: number;
  batch: number;
  jobsPerCommit: number;
  dupRatio: number;
  ids: IdOrder;
  cacheMb: number;
  synchronous: 'FULL' | 'NORMAL';
};

export async function runStoreStage(spec: StoreStageSpec) {
  const store = openSqliteStore({ dataDir: spec.dataDir, cacheMb: spec.cacheMb, synchronous: spec.synchronous });
  // As a worker does before its first job: the filter of stored keys is built outside the timing.
  await store.prepareWrites();
  const s = stream({ ids: spec.ids, topics: 8, dupRatio: spec.dupRatio, seed: 99, prefix: 'stage' });
  // Jobs are built between commits and only the commits are timed: the rate is the
  // store's alone, and memory holds one commit's jobs at a time, as in a worker.
  let seconds = 0;
  let cpuMicros = 0;
  for (let done = 0; done < spec.events; ) {
    const jobs = [];
    for (let j = 0; j < spec.jobsPerCommit && done < spec.events; j++) {
      const n = Math.min(spec.batch, spec.events - done);
      jobs.push({ id: newJobId(n), events: Array.from({ length: n }, () => s.next()) });
      done += n;
    }
    const started = performance.now();
    const cpuAt = process.cpuUsage();
    await store.commitJobs(jobs);
    const cpu = process.cpuUsage(cpuAt);
    cpuMicros += cpu.user + cpu.system;
    seconds += (performance.now() - started) / 1000;
  }
  await store.close();
  return { events: spec.events, seconds, eventsPerSecond: spec.events / seconds, cpuMicrosPerEvent: cpuMicros / spec.events };
}

if (/store\.[jt]s$/.test(process.argv[1] ?? '') && process.send) {
  const result = await runStoreStage(JSON.parse(process.argv[2]!) as StoreStageSpec);
  process.send(result, () => process.exit(0));
}
