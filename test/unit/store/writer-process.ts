// Another process writing to a SQLite store, as a second worker does (fixtures/store-writer.ts).
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { JobOutcome } from '../../../shared/store/port.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const WRITER = path.join(import.meta.dirname, '..', 'fixtures', 'store-writer.ts');

export type Writer = { ready: Promise<void>; go(): void; done: Promise<JobOutcome[]> };

/** Another process writing to the store, as a second worker does. */
export function startWriter(dataDir: string, name: string, jobs: number): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dataDir, name, String(jobs)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: ROOT, // where `--import tsx` is resolved
  });
  let out = '';
  let err = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.startsWith('ready\n')) onReady();
  });
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const done = new Promise<JobOutcome[]>((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`writer ${name} exited with ${code}: ${err}`));
      resolve(JSON.parse(out.split('\n')[1]!) as JobOutcome[]);
    });
  });
  // A writer that dies before "ready" must fail the test, not hang it.
  const readyOrDead = Promise.race([ready, done.then(() => Promise.reject(new Error(`writer ${name} ended early`)))]);
  return { ready: readyOrDead, go: () => child.stdin.end('go\n'), done };
}

