// The parts of a process (shared/shutdown.ts): closed in the reverse of the order they were
// added, once however often stop() is called, each step guarded, under the deadline.
import { expect } from 'chai';
import { createLogger } from '../../shared/log.js';
import { Parts } from '../../shared/shutdown.js';

const log = createLogger({ name: 'test', level: 'silent' });

describe('parts', () => {
  it('closes parts in the reverse of the order they were added', async () => {
    const closed: string[] = [];
    const parts = new Parts(log);
    for (const name of ['store', 'redis', 'queue', 'server']) parts.add(name, { close: () => void closed.push(name) });
    expect(await parts.stop()).to.equal(true);
    expect(closed).to.deep.equal(['server', 'queue', 'redis', 'store']);
  });

  it('stops once: a second stop() gets the first one\'s promise', async () => {
    let closes = 0;
    const parts = new Parts(log);
    parts.add('slow', { close: () => new Promise<void>((resolve) => setTimeout(() => resolve(void closes++), 20)) });
    const first = parts.stop();
    expect(parts.stop()).to.equal(first);
    await first;
    await parts.stop();
    expect(closes).to.equal(1);
  });

  it('closes the rest when one part fails, and reports the stop as unclean', async () => {
    const closed: string[] = [];
    const parts = new Parts(log);
    parts.add('a', { close: () => void closed.push('a') });
    parts.add('b', { close: () => Promise.reject(new Error('boom')) });
    parts.add('c', { close: () => void closed.push('c') });
    expect(await parts.stop()).to.equal(false);
    expect(closed).to.deep.equal(['c', 'a']);
  });

  it('gives up at the deadline when a part never closes', async () => {
    const parts = new Parts(log, 50);
    let after = false;
    parts.add('after', { close: () => void (after = true) });
    parts.add('stuck', { close: () => new Promise(() => undefined) });
    expect(await parts.stop()).to.equal(false);
    expect(after).to.equal(false);
  });

  it('closes a part added while stopping, since nobody would close it later', async () => {
    const parts = new Parts(log);
    let release: () => void = () => undefined;
    parts.add('opening', { close: () => new Promise<void>((resolve) => (release = resolve)) });
    const stopping = parts.stop();
    let lateClosed = false;
    parts.add('late', { close: () => void (lateClosed = true) });
    await new Promise((r) => setImmediate(r));
    expect(lateClosed, 'closed while the others still close').to.equal(true);
    release();
    expect(await stopping).to.equal(true);
  });
});
