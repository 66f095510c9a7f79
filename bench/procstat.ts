// What the kernel says of a process (CPU used, peak memory), and a flush of the page cache.
import { execSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * Writes out what earlier steps left dirty in the page cache (a copied 10 M prefill is over
 * a GB): else the kernel flushes it during the next measurement, on the same two cores.
 */
export function settle(): void {
  execSync('sync');
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Peak resident memory of a process, from the kernel's high-water mark. */
export function peakRssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds of this machine's PostgreSQL server: every `postgres` process, with the CPU of
 * the children it has reaped (a backend whose connection closed is counted by its parent).
 */
export function postgresCpuSeconds(): number {
  let ticks = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.split(') ')[1]!.split(' ');
      // utime, stime, cutime, cstime.
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // A process gone between the listing and the read.
    }
  }
  return ticks / 100;
}
