// Mocha hooks for a suite that shares one Redis and one cluster of real processes.
import { startCluster, type Cluster, type ClusterOptions } from '../../tools/harness/cluster.js';
import { startTestRedis, type TestRedis } from './redis.js';

export type SharedCluster = { redis: TestRedis; cluster: Cluster };

/**
 * Starts Redis and the cluster before the suite and stops both after it; a failing test
 * prints the processes' last log lines. The fields are set once `before` has run.
 */
export function useCluster(opts: Omit<ClusterOptions, 'redisUrl'> = {}): SharedCluster {
  const shared = {} as SharedCluster;
  before(async () => {
    shared.redis = await startTestRedis();
    shared.cluster = await startCluster({ ...opts, redisUrl: shared.redis.url });
  });
  after(async () => {
    await shared.cluster?.destroy();
    await shared.redis?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(shared.cluster?.logTail());
  });
  return shared;
}
