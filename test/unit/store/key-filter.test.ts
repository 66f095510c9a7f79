// The writer's filter of stored keys may say "maybe" for a key it never saw (then the key is
// looked up), but never "no" for one it did: that would store a copy as a new event.
import { expect } from 'chai';
import { dedupKey } from '../../../shared/store/identity.js';
import { KeyFilter } from '../../../shared/store/sqlite/key-filter.js';

describe('key filter', () => {
  it('never forgets a key, as it grows from its first segment into several', () => {
    const f = new KeyFilter();
    const keys: number[] = [];
    // Growing ids (keys in a run), random ids, and the extremes of 53 bits.
    for (let i = 0; i < 200_000; i++) keys.push(dedupKey('orders', `order-${i}`));
    for (let i = 0; i < 200_000; i++) keys.push(dedupKey(`t${i % 7}`, `${Math.random().toString(36).slice(2)}-${i}`));
    keys.push(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1);
    for (const k of keys) f.add(k);
    const missing = keys.filter((k) => !f.mayHave(k));
    expect(missing).to.deep.equal([]);
    // A key the filter may already hold is not added again.
    expect(f.size().keys).to.be.within(keys.length * 0.98, keys.length);
  });

  it('says "maybe" for under 2% of keys it never saw, whatever their shape', () => {
    const f = new KeyFilter(100_000);
    for (let i = 0; i < 100_000; i++) f.add(dedupKey('orders', `order-${i}`));
    const shapes = {
      'the next growing ids': (i: number) => dedupKey('orders', `order-${100_000 + i}`),
      'another topic, same ids': (i: number) => dedupKey('invoices', `order-${i}`),
      'random ids': (i: number) => dedupKey('orders', `${i}-${Math.random()}`),
    };
    for (const [shape, key] of Object.entries(shapes)) {
      let maybe = 0;
      for (let i = 0; i < 100_000; i++) if (f.mayHave(key(i))) maybe++;
      expect(maybe / 100_000, shape).to.be.below(0.02);
    }
  });

  it('holds about 1.25 bytes per key it was sized for, and adds segments only as keys come', () => {
    const f = new KeyFilter(1_000_000);
    expect(f.size().bytes).to.be.within(1_500_000 * 1.25, 1_500_000 * 1.25 + 64);
    for (let i = 0; i < 1_400_000; i++) f.add(i * 7919);
    expect(f.size().bytes, 'still one segment below capacity').to.be.below(1_900_000);
    for (let i = 1_400_000; i < 1_600_000; i++) f.add(i * 7919);
    expect(f.size().bytes, 'a second segment, twice the first').to.be.above(1_500_000 * 1.25 * 3 - 8);
  });

  it('past its bound adds no segment, and from then on says "maybe" for every key', () => {
    // The first segment (65,536 keys) fits in 100,000 bytes; a second (twice as large) does not.
    const f = new KeyFilter(0, 100_000);
    const held: number[] = [];
    for (let i = 0; f.size().keys < 65_536; i++) if (f.add(i * 7919) === 'added') held.push(i * 7919);
    expect(f.full).to.equal(false);
    // A key it may hold already (a false "maybe", common in a full segment) needs no room.
    let k = 2 ** 40;
    while (f.mayHave(k)) k++;
    expect(f.add(k)).to.equal('maybe-held');
    expect(f.full).to.equal(true);
    expect(f.size().bytes).to.be.at.most(100_000);
    // Keys it never saw included: a key it could not hold must never be called new.
    for (let i = 0; i < 1000; i++) expect(f.mayHave(2 ** 41 + i)).to.equal(true);
    expect(held.every((k) => f.mayHave(k))).to.equal(true);
  });
});
