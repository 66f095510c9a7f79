// Commands with a deadline: every child runs in its own process group, and the whole group
// is killed when its time is up, so no step of the containers test can hang it.
import { spawn } from 'node:child_process';

export type RunResult = { code: number | null; stdout: string; stderr: string; ms: number; timedOut: boolean };

export type RunOptions = {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  /** Lines of output go to this function as they come (prefixed by the caller). */
  onLine?: (line: string) => void;
};

const running = new Set<number>();

export function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid;
    if (pid !== undefined) running.add(pid);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let pendingOut = '';
    const feed = (chunk: string) => {
      if (!opts.onLine) return;
      pendingOut += chunk;
      const lines = pendingOut.split('\n');
      pendingOut = lines.pop() ?? '';
      for (const line of lines) opts.onLine(line);
    };
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      feed(c);
    });
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      feed(c);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(pid);
    }, opts.timeoutMs);
    const finish = (code: number | null) => {
      clearTimeout(timer);
      if (pid !== undefined) running.delete(pid);
      if (pendingOut && opts.onLine) opts.onLine(pendingOut);
      resolve({ code, stdout, stderr, ms: performance.now() - started, timedOut });
    };
    child.on('error', (err) => {
      stderr += String(err);
      finish(null);
    });
    child.on('close', (code) => finish(code));
  });
}

/** Starts a long-running child (a service); the caller stops it with `killGroup`. */
export function startBackground(cmd: string, args: string[], env: NodeJS.ProcessEnv, logFd: number): number {
  const child = spawn(cmd, args, { env, stdio: ['ignore', logFd, logFd], detached: true });
  child.unref();
  if (child.pid === undefined) throw new Error(`${cmd} did not start`);
  running.add(child.pid);
  return child.pid;
}

export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Every child still running, for the last-resort exit path. */
export function killAll(): void {
  for (const pid of running) killGroup(pid);
  running.clear();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; throws after `timeoutMs`. */
export async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  const why = last instanceof Error ? ` (last error: ${last.message})` : '';
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}`);
}
