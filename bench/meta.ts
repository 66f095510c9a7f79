// What a run was measured on: the commit, the machine, the versions and the settings.
import { execSync } from 'node:child_process';
import os from 'node:os';

const sh = (cmd: string) => {
  try {
    return execSync(cmd, { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};

export function runMeta(settings: { appendfsync: string; synchronous: string; store: string }) {
  return {
    date: new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC',
    // BENCHMARKS.md itself is left out: an earlier run's table is no change to what is measured.
    commit: sh('git rev-parse --short HEAD') + (sh("git status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md'") ? ' (with uncommitted changes)' : ''),
    cpu: os.cpus()[0]?.model ?? 'unknown cpu',
    cores: String(os.cpus().length),
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    redis: sh('redis-server --version').split(' ').slice(0, 3).join(' '),
    appendfsync: settings.appendfsync,
    synchronous: settings.synchronous,
    store: settings.store,
  };
}
