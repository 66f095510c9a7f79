// What one bench run measured: the shapes the scenario, the report and the JSON file share.
import path from 'node:path';
import type { StoreKind } from '../tools/harness/cluster.js';
import { ROOT } from '../tools/harness/root.js';
import type { ProcessProfile } from './cpu-profile.js';
import type { LoadResult } from './load.js';
import type { RecoveryResult } from './recovery.js';
import type { Scenario } from './scenarios.js';
import type { CommitTimes } from './stream-report.js';
import type { SubscribersResult } from './subscribers.js';

/** Where each run's JSON goes, and the prefill cache. */
export const RESULTS = path.join(ROOT, 'bench-results');

export type Counters = { received: number; unique_processed: number; duplicate_dropped: number };

export type RunResult = {
  scenario: Scenario;
  store: StoreKind;
  /** Live subscribers during the run (undefined: not asked for). */
  subscribers?: number;
  oneTopicEach?: boolean;
  stream?: SubscribersResult;
  commits?: CommitTimes;
  load: LoadResult;
  endToEndSeconds: number;
  endToEndEventsPerSecond: number;
  publishEventsPerSecond: number;
  publishRequestsPerSecond: number;
  lag: { maxEvents: number; atHalf: number; atEnd: number };
  peakRssMb: Record<string, number>;
  /** CPU seconds each process used from the first request to the drained queue. */
  cpuSeconds: Record<string, number>;
  /** Queue jobs committed during the run: events per job says how much the API coalesced. */
  jobs: number;
  exact: boolean;
  final: Counters;
  expected: Counters;
  /** The store on disk once the workers stopped (SQLite file and WAL; PostgreSQL database). */
  storeBytes?: number;
  stages?: { bareHttp: StageRate; bullmq: StageRate; store: StageRate };
  recovery?: RecoveryResult;
  /** The service's Node processes profiled during the load (the bench's `profile` part). */
  profiles?: Record<string, ProcessProfile>;
};

export type StageRate = {
  eventsPerSecond: number;
  requestsPerSecond?: number;
  /** CPU of the stage's own processes (the bare server; BullMQ's client and Redis), load excluded. */
  cpuMicrosPerEvent?: number;
  eventsPerJob?: number;
  note: string;
};

export type WritersResult = { store: StoreKind; writers: number; rounds: number[]; ratios: number[] };
