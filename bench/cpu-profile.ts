// CPU profiles of the service's processes during a bench run: started and stopped by signal
// (cpu-profile-preload.ts does the profiling inside each process), then reduced to the frames
// that take the most time, as shares of each process's busy samples.
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { waitFor } from '../tools/harness/wait.js';

type CallFrame = { functionName: string; url: string; lineNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
/** The shape V8's `Profiler.stop` returns (the `.cpuprofile` format). */
export type CpuProfile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

export type ProfileFrame = { frame: string; self: number; total: number };
export type ProcessProfile = { busySamples: number; seconds: number; frames: ProfileFrame[]; ownCode: ProfileFrame[] };

/** NODE_OPTIONS and variables that make a service process profile itself on SIGUSR2. */
export function profilingEnv(dir: string, nodeOptions: string | undefined): Record<string, string> {
  const preload = pathToFileURL(path.join(import.meta.dirname, 'cpu-profile-preload.js')).href;
  return { NODE_OPTIONS: `${nodeOptions ?? ''} --import=${preload}`.trim(), BENCH_CPU_PROFILE_DIR: dir };
}

/** A file's place, short: this project's path, a package and its file, or node's own module. */
export function shortUrl(url: string): string {
  if (url === '') return '';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) return url.slice(modules + '/node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (url.startsWith('file://') && dist >= 0) return url.slice(dist + '/dist/'.length);
  return url;
}

const ownCode = (frame: CallFrame) => frame.url.startsWith('file://') && !frame.url.includes('/node_modules/');

function frameName(f: CallFrame): string {
  const where = shortUrl(f.url);
  if (where !== '') return `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
  // V8's own entries are in parentheses; other frames without a file are native code (an addon's, node's).
  if (f.functionName.startsWith('(')) return f.functionName;
  return `${f.functionName || '(unnamed)'} (native)`;
}

/**
 * The largest subtrees, one per call chain: a frame whose share is within half a point of a
 * frame already listed is most likely its caller or callee in a chain of wrappers.
 */
function distinctChains(list: ProfileFrame[], top: number): ProfileFrame[] {
  const out: ProfileFrame[] = [];
  for (const f of list) {
    if (out.some((o) => Math.abs(o.total - f.total) < 0.005)) continue;
    out.push(f);
    if (out.length === top) break;
  }
  return out;
}

/**
 * The frames that take the most of a process's busy samples (`(idle)` left out): by their own
 * time, and, for this project's code, with their callees (one frame per chain of wrappers).
 * A frame counts once per sample however often it recurs in the stack.
 */
export function summarizeProfile(profile: CpuProfile, top = 12): ProcessProfile {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map<number, number>();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const own = new Set<string>();
  let busy = 0;
  for (const [id, count] of hits) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') continue;
    busy += count;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + count);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = byId.get(at)!;
      if (n.callFrame.functionName === '(root)') break;
      const k = frameName(n.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      if (ownCode(n.callFrame)) own.add(k);
      total.set(k, (total.get(k) ?? 0) + count);
    }
  }
  const share = (n: number | undefined) => (busy === 0 ? 0 : (n ?? 0) / busy);
  const frames = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([frame, n]) => ({ frame, self: share(n), total: share(total.get(frame)) }));
  const ownFrames = distinctChains(
    [...own].map((frame) => ({ frame, self: share(self.get(frame)), total: share(total.get(frame)) })).sort((a, b) => b.total - a.total),
    top,
  );
  return { busySamples: busy, seconds: (profile.endTime - profile.startTime) / 1e6, frames, ownCode: ownFrames };
}

/** Starts and stops the profilers of the named processes, and collects what they wrote. */
export class ServiceProfiler {
  constructor(
    private readonly dir: string,
    private readonly pids: Record<string, number | undefined>,
  ) {}

  private signal(): void {
    for (const pid of Object.values(this.pids)) if (pid !== undefined) process.kill(pid, 'SIGUSR2');
  }

  start(): void {
    this.signal();
  }

  /** Stops every profiler; each process's profile, reduced, once all are written. */
  async stop(): Promise<Record<string, ProcessProfile>> {
    this.signal();
    const files = Object.entries(this.pids).flatMap(([name, pid]) => (pid === undefined ? [] : [[name, path.join(this.dir, `${pid}.cpuprofile`)] as const]));
    await waitFor(() => files.every(([, f]) => fs.existsSync(f) || fs.existsSync(`${f}.error`)), { timeoutMs: 60_000, what: 'the CPU profiles to be written' });
    const out: Record<string, ProcessProfile> = {};
    for (const [name, file] of files) {
      if (fs.existsSync(`${file}.error`)) throw new Error(`${name}: profiler: ${fs.readFileSync(`${file}.error`, 'utf8')}`);
      out[name] = summarizeProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile);
    }
    return out;
  }
}
