// The reference the round-three targets are read against, measured in the same run: NATS
// JetStream's deduplicating publish on a nats-server of the bench's own (a free port, a
// store directory of its own, never a server already on the standard port), with its
// defaults otherwise (file storage; it syncs to disk every two minutes, not at each ack).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findOnPath, freePort } from '../scripts/redis-server.js';
import { child } from './children.js';
import type { JetStreamRun, JetStreamSpec } from './jetstream-client.js';
import { cpuSeconds, peakRssMb, settle } from './procstat.js';
import { progress } from './progress.js';

export type JetStreamMode = { name: 'reference' | 'single'; messages: number; inFlight: number };
export type JetStreamResult = JetStreamMode & {
  run: JetStreamRun;
  messagesPerSecond: number;
  /** nats-server's CPU over the publishing, per message. */
  serverMicrosPerMessage: number;
  serverPeakRssMb: number;
  /** Every copy acknowledged as a duplicate, and the stream holding each identity once. */
  exact: boolean;
};

/** The two ways the bench publishes to JetStream: with as many messages in flight as the batched scenario has events, and as the one-event scenario does. */
export function jetStreamModes(o: { messages: number; referenceInFlight: number; singleInFlight: number }): JetStreamMode[] {
  return [
    { name: 'reference', messages: o.messages, inFlight: o.referenceInFlight },
    { name: 'single', messages: o.messages, inFlight: o.singleInFlight },
  ];
}

const NATS_SERVER = ['nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server'];

function natsServerBinary(): string {
  for (const b of NATS_SERVER) {
    const found = b.startsWith('/') ? (fs.existsSync(b) ? b : undefined) : findOnPath(b);
    if (found) return found;
  }
  throw new Error('nats-server not found (Debian: apt-get install nats-server); --no-jetstream skips the reference');
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('data', (d) => (socket.destroy(), resolve(d.toString().startsWith('INFO'))));
    socket.once('error', () => resolve(false));
  });

async function startNatsServer(dir: string): Promise<{ proc: ChildProcess; servers: string }> {
  const port = await freePort();
  const proc = spawn(natsServerBinary(), ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited: ${err}`);
    if (await listening(port)) return { proc, servers: `127.0.0.1:${port}` };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`nats-server did not listen on ${port}: ${err}`);
}

/** Each mode on a fresh server and a fresh stream, the server's CPU counted from the client's 'go'. */
export async function measureJetStream(modes: JetStreamMode[]): Promise<JetStreamResult[]> {
  const out: JetStreamResult[] = [];
  for (const mode of modes) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-bench-jetstream-'));
    settle();
    const server = await startNatsServer(dir);
    try {
      let cpuAtStart = 0;
      const spec: JetStreamSpec = { servers: server.servers, stream: `BENCH_${mode.name.toUpperCase()}`, messages: mode.messages, dupRatio: 0.2, inFlight: mode.inFlight, seed: 19 };
      const run = await child<JetStreamRun>('jetstream-client.js', spec, undefined, () => Promise.resolve(void (cpuAtStart = cpuSeconds(server.proc.pid))));
      const serverCpu = cpuSeconds(server.proc.pid) - cpuAtStart;
      const r: JetStreamResult = {
        ...mode,
        run,
        messagesPerSecond: run.messages / run.seconds,
        serverMicrosPerMessage: (serverCpu * 1e6) / run.messages,
        serverPeakRssMb: peakRssMb(server.proc.pid),
        exact: run.duplicates === run.resent && run.stored === run.originals,
      };
      progress(`jetstream ${mode.name}: ${Math.round(r.messagesPerSecond).toLocaleString()} messages/s, ${mode.inFlight} in flight, p99 ${run.latencyMs.p99.toFixed(1)} ms, exact: ${r.exact}`, true);
      out.push(r);
    } finally {
      server.proc.kill('SIGTERM');
      await new Promise((r) => (server.proc.exitCode !== null ? r(undefined) : server.proc.once('exit', r)));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}
