// A worker process: takes publish jobs from the queue and commits their events to the store.
// Any number run at once; they share only Redis and the store. Its parts are built in order
// and closed in the reverse order (shared/shutdown.ts): jobs first, the store last.
import { errorMessage } from '../../shared/errors.js';
import { createLogger } from '../../shared/log.js';
import { configOrExit, exitOnUnsafeRedis, logRedisOutages, stopOnSignals } from '../../shared/process.js';
import { closeRedis, createRedis } from '../../shared/queue.js';
import { Parts } from '../../shared/shutdown.js';
import { Heartbeat } from './heartbeat.js';
import { JobIntake } from './intake.js';
import { createNotifier } from './notify.js';
import { StoreOpener } from './store-opener.js';
import { Sweeper, heldJobIds } from './sweeper.js';
import { leaseConnectionName, WriterLease } from './writer-lease.js';

const config = configOrExit('worker');
const log = createLogger({ name: 'worker', level: config.logLevel });
const parts = new Parts(log, 10_000);
stopOnSignals(log, () => parts.stop());

// First built, last closed, though it opens only once the heartbeat can report why it cannot.
const opener = parts.add('store', new StoreOpener(config, log));
const connection = createRedis(config.redisUrl, 'worker');
parts.add('redis', { close: () => closeRedis(connection) });
// BullMQ listens while it runs; this also covers the start and the stop, and says it once.
logRedisOutages(connection, log, 'jobs wait in the queue until it is back');
exitOnUnsafeRedis(connection, log, 'worker');
const heartbeat = parts.add('deregister', new Heartbeat(connection, config.queueName, log));

const store = await opener.open(async (err, attempt) => {
  heartbeat.report('store_error', `cannot open the store: ${errorMessage(err)}`);
  if (attempt === 1 || attempt % 20 === 0) log.error({ err, attempt }, 'cannot open the store; taking no jobs until it opens');
  await heartbeat.beat();
});
if (store === undefined) {
  // Stopped while the store was opening (a database away, a data directory not writable):
  // no job was taken, so there is nothing to hand back.
  log.info('stopped before taking any job');
} else {
  // Expired events and job ids past their horizon, deleted in the background (sweeper.ts).
  parts.add(
    'sweeper',
    new Sweeper({ store, log, retentionMs: config.eventRetentionMs, heldJobs: (ids) => heldJobIds(connection, config.queueName, ids) }),
  );
  // Added before the intake, so closed after it: the lease is freed once this worker's
  // last jobs are committed, and a standby takes over then (writer-lease.ts).
  // Its connection is its own, named after this worker: a standby that finds it gone knows
  // this worker died (writer-lease.ts).
  const leaseRedis =
    store.kind === 'sqlite' && config.sqliteWriterLeaseMs > 0 ? createRedis(config.redisUrl, 'worker', undefined, leaseConnectionName(heartbeat.state.id)) : undefined;
  if (leaseRedis !== undefined) parts.add('lease-redis', { close: () => closeRedis(leaseRedis) });
  const lease =
    leaseRedis !== undefined
      ? parts.add(
          'writer-lease',
          new WriterLease({
            redis: leaseRedis,
            queueName: config.queueName,
            id: heartbeat.state.id,
            ttlMs: config.sqliteWriterLeaseMs,
            log,
            // The heartbeat is written at each change: /stats shows who writes without a beat's delay.
            onWriter: () => {
              heartbeat.state.role = 'writer';
              intake.take();
              heartbeat.beat().catch(() => undefined);
            },
            onStandby: async () => {
              heartbeat.state.role = 'standby';
              await intake.standBy();
              await heartbeat.beat().catch(() => undefined);
            },
          }),
        )
      : undefined;
  const intake = parts.add(
    'worker',
    new JobIntake({
      config,
      connection,
      store,
      log,
      onCommitted: createNotifier(connection, config.queueName, log),
      onHealth: (problem) => heartbeat.report(problem === null ? 'ok' : 'store_error', problem),
      onStopping: () => heartbeat.report('stopping', heartbeat.state.error),
      onFatal: (err) => {
        log.fatal({ err }, 'worker stopped unexpectedly');
        process.exit(1);
      },
    }),
  );
  heartbeat.follow(intake.committer);
  heartbeat.report('ok', null);
  if (lease === undefined) intake.take();
  else {
    heartbeat.state.role = 'standby';
    lease.start();
  }
  await heartbeat.beat().catch(() => undefined);
  log.info(
    { queue: config.queueName, concurrency: config.workerConcurrency, store: store.location, worker: heartbeat.state.id, ...(lease && { writerLeaseMs: config.sqliteWriterLeaseMs }) },
    'worker started',
  );
}
