// The publisher CLI's progress line.
import type { Totals, Verdicts } from './send.js';


export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x: number) => String(x).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function progressText(t: Totals, total: number | undefined, elapsedS: number, tty: boolean): string {
  const done = t.accepted + t.failed;
  const rate = elapsedS > 0 ? t.accepted / elapsedS : 0;
  const tail = `${fmt(rate)} ev/s  retried ${fmt(t.retried)}  failed ${fmt(t.failed)}`;
  if (total === undefined) return `${fmt(done)} events  ${tail}`;
  const share = total > 0 ? done / total : 1;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  const counts = `${fmt(done)}/${fmt(total)} events`;
  if (!tty) return `${(share * 100).toFixed(0)}%  ${counts}  ${tail}  ETA ${duration(eta)}`;
  const width = 24;
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}%  ${counts}  ${tail}  ETA ${duration(eta)}`;
}

export type Summary = { totals: Totals; verdicts: Verdicts; seconds: number; unsent: number; url: string; wait: number | undefined; interrupted: boolean };

/** What stdout gets at the end: the counts of the run. */
export function summaryText({ totals, verdicts, seconds, unsent, url, wait, interrupted }: Summary): string {
  return (
    [
      `publish: ${interrupted ? 'interrupted' : 'done'} after ${seconds.toFixed(2)} s, to ${url}`,
      `  sent      ${fmt(totals.sent)} events in ${fmt(totals.requests)} requests${unsent > 0 ? ` (${fmt(unsent)} not sent)` : ''}`,
      `  accepted  ${fmt(totals.accepted)}`,
      `  retried   ${fmt(totals.retried)} requests`,
      `  failed    ${fmt(totals.failed)}`,
      `  rate      ${fmt(seconds > 0 ? totals.accepted / seconds : 0)} events/s`,
      ...(wait === undefined
        ? []
        : [
            `  stored    ${fmt(verdicts.stored)}`,
            `  duplicate ${fmt(verdicts.duplicate)}`,
            `  conflict  ${fmt(verdicts.conflict)}`,
            `  not processed within ${wait} s: ${fmt(verdicts.unconfirmed)}`,
          ]),
      '',
    ].join('\n')
  );
}
