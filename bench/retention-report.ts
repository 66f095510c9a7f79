// The retention bench's figures: the growth that remains once the events table is steady,
// and the Markdown table of its samples.
import type { StoreKind } from '../tools/harness/cluster.js';
import type { Sample } from './retention-probes.js';

export const mb = (b: number) => (b / 1e6).toFixed(1);

/**
 * What grows with the identities: on SQLite the database file alone, since the WAL's size
 * is a high-water mark of writes between checkpoints, not of what is stored.
 */
export const grown = (s: Sample) => s.sizeBytes - (s.walBytes ?? 0);

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export function table(store: StoreKind, samples: Sample[], perIdentity: number): string {
  const head =
    store === 'sqlite'
      ? '| elapsed | stored so far | expired | `events` rows | `gone` rows | `jobs` rows | `copies` rows | size on disk (MB) | WAL (MB) | database file (MB) | free pages (MB) | file − `gone` × slope (MB) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
      : '| elapsed | stored so far | expired | `events` rows | `gone` rows | `jobs` rows | `copies` rows | store tables (MB) | `events` table (MB) | size − `gone` × slope (MB) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
  const lines = samples.map((s) => {
    const common = [
      `${Math.round(s.elapsedS)} s`,
      s.stats.unique_processed,
      s.stats.expired ?? 0,
      s.rows.events,
      s.rows.gone,
      s.rows.jobs,
      s.rows.copies,
      mb(s.sizeBytes),
    ];
    const rest = mb(grown(s) - s.rows.gone * perIdentity);
    const extra =
      store === 'sqlite'
        ? [mb(s.walBytes ?? 0), mb(s.sizeBytes - (s.walBytes ?? 0)), mb((s.freePages ?? 0) * (s.pageSize ?? 0)), rest]
        : [mb(s.eventsBytes ?? 0), rest];
    return `| ${[...common, ...extra].join(' | ')} |`;
  });
  return [head, ...lines].join('\n');
}
