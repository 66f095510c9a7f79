// The bench's helper processes (load generator, stages, subscribers), forked from the build.
import { fork } from 'node:child_process';
import path from 'node:path';
import type { SubscribersExpect, SubscribersResult, SubscribersSpec } from './subscribers.js';

/**
 * Runs a bench script as a child process. A child that first says { type: 'ready' } (the
 * load generator, once its requests are built) is sent 'go' after `onReady` resolves: what
 * it did before is not measured.
 */
export function child<T>(script: string, arg: unknown, onMessage?: (m: any) => void, onReady: () => Promise<void> = () => Promise.resolve()): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = fork(path.join(import.meta.dirname, script), [JSON.stringify(arg)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: T | undefined;
    c.on('message', (m: any) => {
      if (m?.type === 'progress') onMessage?.(m);
      else if (m?.type === 'ready') void onReady().then(() => c.send('go'), (err: unknown) => (c.kill(), reject(err instanceof Error ? err : new Error(String(err)))));
      else result = m as T;
    });
    c.on('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`${script} exited with ${code}`))));
  });
}

export type Subscribers = { finish(expect: Omit<SubscribersExpect, 'type'>): Promise<SubscribersResult>; kill(): void };

/** N live subscribers in a process of their own, connected before the load starts. */
export async function startSubscribers(spec: SubscribersSpec): Promise<Subscribers> {
  const c = fork(path.join(import.meta.dirname, 'subscribers.js'), [JSON.stringify(spec)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let result: SubscribersResult | undefined;
  const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    c.on('message', (m: { type: string }) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'done') result = m as SubscribersResult;
    });
    void exited.then(() => reject(new Error('the subscribers process exited before its streams were open')));
  });
  return {
    kill: () => c.kill(),
    async finish(expect) {
      c.send({ type: 'expect', ...expect } satisfies SubscribersExpect);
      await exited;
      if (result === undefined) throw new Error('the subscribers process exited without a result');
      return result;
    },
  };
}
