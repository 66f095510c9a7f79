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

const quantiles = (xs: readonly number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? {} : { n: s.length, p50: +s[Math.floor(s.length / 2)]!.toFixed(2), p99: +s[Math.floor(s.length * 0.99)]!.toFixed(2), max: +s.at(-1)!.toFixed(2) };
};

/** Seconds until /ready answered 200 again, by kind of outage: count, p50, p99, max. */
function readyQuantiles(faults: Faults): Record<string, ReturnType<typeof quantiles>> {
  return Object.fromEntries(Object.entries(faults.readyAgain).map(([kind, xs]) => [kind, quantiles(xs)]));
}

/** Prints the summary and each check; true when every check passed. */
export function report(run: RunSummary, ledger: Ledger, faults: Faults, checks: Check[]): boolean {
  const { counts, sent, acked } = ledger;
  const { final, walk } = run;
  const storedUnacked = [...walk.storedKeys.keys()].filter((k) => !acked.has(k)).length;
  const totalFaults = faults.total();
  say(`faults survived: ${totalFaults} ${JSON.stringify(faults.injected)}`);
  say(`faults in detail: ${JSON.stringify(faults.detail)}`);
  say(`load: ${counts.requests} requests (${JSON.stringify(counts.by_kind)}), ${counts.attempts} attempts, answers ${JSON.stringify(counts.answers)}, ${counts.network_errors} network errors, ${counts.timeouts} timeouts, ${counts.gave_up} given up`);
  say(`events: ${sent.size} distinct sent, ${counts.copies_sent} copies sent, ${acked.size} distinct accepted (202), ${final.received - counts.events_in_202} queued by requests whose answer was lost, ${storedUnacked} stored but never answered 202`);
  say(`stats: received ${final.received}, unique_processed ${final.unique_processed}, duplicate_dropped ${final.duplicate_dropped}, pending ${final.pending}`);
  say(`checked: ${walk.storedCount} stored events walked, ${acked.size} accepted identities looked up`);
  say(`recovery: ${recoveryLine(faults.recoveries, run.jobLockMs)}`);
  say(`ready again after outages (s): ${JSON.stringify(readyQuantiles(faults))}`);
  let ok = true;
  for (const [name, pass, detail] of checks) {
    ok &&= pass;
    say(`${pass ? 'PASS' : 'FAIL'} ${name} (${detail})`);
  }
  const recoverySeconds = [...faults.recoveries].sort((x, y) => x - y).map((r) => +r.toFixed(2));
  console.log(JSON.stringify({ result: ok ? 'pass' : 'fail', seed: run.seed, seconds: +run.loadSeconds.toFixed(1), faults: faults.injected, total_faults: totalFaults, ...counts, distinct_sent: sent.size, distinct_accepted: acked.size, stored: walk.storedCount, received: final.received, unique_processed: final.unique_processed, duplicate_dropped: final.duplicate_dropped, recovery_seconds: recoverySeconds, faults_detail: faults.detail, ready_again_seconds: readyQuantiles(faults), never_ready: faults.neverReady }));
  return ok;
}
