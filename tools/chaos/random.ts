// The run's one seeded source of choices, so a failing run can be replayed with its seed.
// Every choice (events, requests, faults, pauses) draws from it in turn.

/** mulberry32: a small seeded generator. */
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Random {
  readonly next: () => number;

  constructor(seed: number) {
    this.next = rng(seed);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  between(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const say = (msg: string) => console.log(`chaos: ${msg}`);
