// The API process' one subscription to the workers' commit notices (shared/notices.ts).
// A connection in subscribe mode can do nothing else, so it is a duplicate of the API's
// connection, made for this alone; whoever needs notices in this process listens here
// instead of opening another.
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/log.js';
import { commitsChannel, parseNotice, type CommitNotice } from '../../shared/notices.js';
import { closeRedis } from '../../shared/queue.js';

export type CommitFeed = {
  /** Called for every well-formed notice, in arrival order. */
  onNotice(listener: (notice: CommitNotice) => void): void;
  /**
   * Called each time the subscription is back after the connection dropped: notices sent
   * meanwhile are lost, so a listener reads the store again instead of waiting for one.
   */
  onReconnect(listener: () => void): void;
  /** Unsubscribes; safe to call twice. */
  close(): Promise<void>;
};

export function subscribeCommits(redis: Redis, queueName: string, log: Logger): CommitFeed {
  const channel = commitsChannel(queueName);
  // The API's own connection fails fast (no offline queue, a command timeout) so that a
  // publish answers 503 at once; a subscription should instead wait for Redis and come
  // back by itself, re-subscribing (ioredis' autoResubscribe).
  const sub = redis.duplicate({
    connectionName: 'aggregator-api-commits',
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    commandTimeout: undefined,
    autoResubscribe: true,
  });
  const noticeListeners: ((n: CommitNotice) => void)[] = [];
  const reconnectListeners: (() => void)[] = [];
  let readyBefore = false;
  let down = false;
  let closing: Promise<void> | undefined;

  sub.on('error', (err: Error) => {
    if (!down && closing === undefined) log.warn({ err: err.message }, 'commit notices: redis unreachable; live streams fall back to their slow timer');
    down = true;
  });
  sub.on('ready', () => {
    down = false;
    if (readyBefore) for (const l of reconnectListeners) l();
    readyBefore = true;
  });
  sub.on('message', (from: string, message: string) => {
    if (from !== channel) return;
    const notice = parseNotice(message);
    if (notice === undefined) {
      log.debug('commit notices: malformed notice ignored');
      return;
    }
    for (const l of noticeListeners) l(notice);
  });
  sub.subscribe(channel).catch((err: unknown) => log.warn({ err }, 'commit notices: subscribe failed; retried on reconnect'));

  return {
    onNotice: (l) => void noticeListeners.push(l),
    onReconnect: (l) => void reconnectListeners.push(l),
    close() {
      noticeListeners.length = 0;
      reconnectListeners.length = 0;
      closing ??= closeRedis(sub);
      return closing;
    },
  };
}
