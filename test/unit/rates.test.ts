import { expect } from 'chai';
import { RateRing, type Totals } from '../../services/api/operator/rates.js';

describe('RateRing', () => {
  it('keeps the newest samples, oldest first, dropping the oldest past its size', async () => {
    let n = 0;
    let t = 1000;
    const ring = new RateRing(() => Promise.resolve({ received: ++n * 10, processed: n * 9 }), { periodMs: 3_600_000, size: 3, now: () => (t += 1000) });
    for (let i = 0; i < 5; i++) await ring.sample();
    expect(ring.samples()).to.deep.equal([
      { t: 4000, received: 30, processed: 27 },
      { t: 5000, received: 40, processed: 36 },
      { t: 6000, received: 50, processed: 45 },
    ]);
    await ring.close();
  });

  it('skips a beat while a read is in flight, and leaves a gap for a failed or unknown read', async () => {
    let release: (v: Totals) => void = () => undefined;
    let calls = 0;
    const answers: (() => Promise<Totals | null>)[] = [
      () => new Promise<Totals>((r) => (release = r)),
      () => Promise.reject(new Error('store away')),
      () => Promise.resolve(null),
      () => Promise.resolve({ received: 7, processed: 7 }),
    ];
    const ring = new RateRing(() => answers[calls++]!(), { periodMs: 3_600_000 });
    const first = ring.sample();
    const second = ring.sample();
    expect(calls).to.equal(1);
    release({ received: 1, processed: 0 });
    await Promise.all([first, second]);
    await ring.sample();
    await ring.sample();
    await ring.sample();
    expect(ring.samples().map((s) => s.received)).to.deep.equal([1, 7]);
    await ring.close();
  });

  it('samples on its own timer, and stops on close (twice is fine)', async () => {
    let calls = 0;
    const ring = new RateRing(() => Promise.resolve({ received: ++calls, processed: 0 }), { periodMs: 10 });
    const started = Date.now();
    while (ring.samples().length < 3 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10));
    expect(ring.samples().length).to.be.at.least(3);
    await ring.close();
    await ring.close();
    const after = calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).to.equal(after);
    await ring.sample();
    expect(calls).to.equal(after);
  });
});
