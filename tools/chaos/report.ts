// What the run prints at the end: the faults, the load, the books, each check, and one JSON
// line for machines.
import type { Check, Walk } from './audit.js';
import type { Faults } from './faults.js';
import type { Ledger } from './ledger.js';
import { say } from './random.js';

export type RunSummary = { seed: number; loadSeconds: number; jobLockMs: string | undefined; final: any; walk: Walk };

function recoveryLine(recoveries: readonly number[], jobLockMs: string | undefined): string {
  const sorted = [...recoveries].sort((x, y) => x - y);
  return sorted.length === 0
    ? 'no worker was killed holding a job'
    : `${sorted.length} worker kills with jobs in hand; their jobs were taken over within p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} s, max ${sorted.at(-1)!.toFixed(1)} s (JOB_LOCK_MS ${jobLockMs ?? 'default'})`;
}

/** Prints the summary and each check; true when every check passed. */
export function report(run: RunSummary, ledger: Ledger, faults: Faults, checks: Check[]): boolean {
  const { counts, sent, acked } = ledger;
  const { final, walk } = run;
  const storedUnacked = [...walk.storedKeys.keys()].filter((k) => !acked.has(k)).length;
  const totalFaults = faults.total();
  say(`faults survived: ${totalFaults} ${JSON.stringify(faults.injected)}`);
  say(`load: ${counts.requests} requests (${JSON.stringify(counts.by_kind)}), ${counts.attempts} attempts, answers ${JSON.stringify(counts.answers)}, ${counts.network_errors} network errors, ${counts.timeouts} timeouts, ${counts.gave_up} given up`);
  say(`events: ${sent.size} distinct sent, ${counts.copies_sent} copies sent, ${acked.size} distinct accepted (202), ${final.received - counts.events_in_202} queued by requests whose answer was lost, ${storedUnacked} stored but never answered 202`);
  say(`stats: received ${final.received}, unique_processed ${final.unique_processed}, duplicate_dropped ${final.duplicate_dropped}, pending ${final.pending}`);
  say(`checked: ${walk.storedCount} stored events walked, ${acked.size} accepted identities looked up`);
  say(`recovery: ${recoveryLine(faults.recoveries, run.jobLockMs)}`);
  let ok = true;
  for (const [name, pass, detail] of checks) {
    ok &&= pass;
    say(`${pass ? 'PASS' : 'FAIL'} ${name} (${detail})`);
  }
  const recoverySeconds = [...faults.recoveries].sort((x, y) => x - y).map((r) => +r.toFixed(2));
  console.log(JSON.stringify({ result: ok ? 'pass' : 'fail', seed: run.seed, seconds: +run.loadSeconds.toFixed(1), faults: faults.injected, total_faults: totalFaults, ...counts, distinct_sent: sent.size, distinct_accepted: acked.size, stored: walk.storedCount, received: final.received, unique_processed: final.unique_processed, duplicate_dropped: final.duplicate_dropped, recovery_seconds: recoverySeconds }));
  return ok;
}
