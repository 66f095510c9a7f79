// Test hosts on one machine: each its own network namespace (ip netns + a veth pair to the
// root namespace) and data directory, or, where namespaces cannot be made, plain loopback
// processes with data directories of their own. What the hosts share is only what they
// reach through TCP forwarders in the test process: PostgreSQL and Redis, both on loopback.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findOnPath } from '../../scripts/redis-server.js';

export type HostsMode = 'netns' | 'loopback';

export type Host = {
  name: string;
  /** The network namespace, in netns mode. */
  namespace: string | undefined;
  /** Where services on this host listen, and where the test reaches them. */
  address: string;
  dataDir: string;
  /** What a process is started through to run on this host. */
  command: string[];
  /** A URL of a forwarded loopback service, as this host reaches it. */
  reach(url: string): string;
  /** The pids in this host's namespace (netns mode), for checking that a killed process is gone. */
  pids(): number[];
};

export type Hosts = {
  mode: HostsMode;
  /** Why this mode, for the test's output. */
  why: string;
  host(name: string): Host;
  all: Host[];
  /** For the processes' logs: outside every data directory, removed by destroy(). */
  logDir: string;
  /** Tears everything down; resolves with the problems met, empty when all went. */
  destroy(): Promise<string[]>;
};

export type Target = { host: string; port: number };

const IP_TIMEOUT_MS = 10_000;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: IP_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Prefix of every namespace this process makes: a later run can tell whose they were. */
const PREFIX = 'agg-';
const ownPrefix = `${PREFIX}${process.pid}-`;

/** The namespaces of this machine, by name. */
export function namespaces(): string[] {
  try {
    return ip('netns', 'list')
      .split('\n')
      .map((line) => line.split(' ')[0]!)
      .filter(Boolean);
  } catch {
    return [];
  }
}

export function ownNamespaces(): string[] {
  return namespaces().filter((n) => n.startsWith(ownPrefix));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function nsPids(ns: string): number[] {
  return ip('netns', 'pids', ns)
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

/**
 * A run killed before its `after` leaves its namespaces; those whose test process is gone and
 * that hold no process are removed, so they do not pile up. Anything else is left alone.
 */
function sweepStale(): void {
  for (const ns of namespaces()) {
    const m = /^agg-(\d+)-/.exec(ns);
    if (!m || pidAlive(Number(m[1]))) continue;
    try {
      if (nsPids(ns).length === 0) ip('netns', 'del', ns);
    } catch {
      // another run may be sweeping the same one
    }
  }
}

/** The mode asked for by TEST_HOSTS, or undefined to take the best this machine allows. */
function askedMode(): HostsMode | undefined {
  const asked = process.env.TEST_HOSTS;
  if (asked === undefined || asked === '') return undefined;
  if (asked === 'netns' || asked === 'loopback') return asked;
  throw new Error(`TEST_HOSTS must be netns or loopback, not ${asked}`);
}

/** Whether this machine can make namespaces at all; the reason when it cannot. */
function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  if (findOnPath('ip') === undefined) return 'no ip (iproute2) on PATH';
  return undefined;
}

/** A TCP forwarder: what reaches `listen` goes to `target`. */
async function forwarder(listenHost: string, target: Target): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    // Redis commands and PostgreSQL round trips are small: Nagle would stall them.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    // A killed peer must close the other side too, or the server keeps its session.
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function hostUrl(url: string, host: string, port: number): string {
  const u = new URL(url);
  u.hostname = host;
  u.port = String(port);
  return u.toString();
}

function loopbackHosts(names: string[], root: string, why: string): Hosts {
  const all = names.map((name): Host => {
    const dataDir = path.join(root, name, 'data');
    fs.mkdirSync(dataDir, { recursive: true });
    return { name, namespace: undefined, address: '127.0.0.1', dataDir, command: [], reach: (url) => url, pids: () => [] };
  });
  return {
    mode: 'loopback',
    why,
    all,
    logDir: logDirIn(root),
    host: (name) => find(all, name),
    destroy: () => {
      fs.rmSync(root, { recursive: true, force: true });
      return Promise.resolve([]);
    },
  };
}

function logDirIn(root: string): string {
  const dir = path.join(root, 'logs');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function find(all: Host[], name: string): Host {
  const host = all.find((h) => h.name === name);
  if (!host) throw new Error(`no host ${name}`);
  return host;
}

/**
 * Claims a /24 of 10.213.0.0/16 for this run with an unreachable route: adding it fails when
 * another run holds it, so two runs never share addresses, and while it stands, an address of
 * the /24 whose veth is gone is refused here instead of following the default route out.
 */
function claimSubnet(): number {
  const first = process.pid % 250;
  for (let i = 0; i < 250; i++) {
    const octet = ((first + i) % 250) + 1;
    try {
      ip('route', 'add', 'unreachable', `10.213.${octet}.0/24`);
      return octet;
    } catch {
      // held by another run, or in use on this machine
    }
  }
  throw new Error('no free /24 in 10.213.0.0/16');
}

async function netnsHosts(names: string[], root: string, targets: Target[]): Promise<Hosts> {
  sweepStale();
  const octet = claimSubnet();
  const made: string[] = [];
  const forwarders: { close(): Promise<void> }[] = [];
  const all: Host[] = [];

  const destroy = async (): Promise<string[]> => {
    const problems: string[] = [];
    await Promise.all(forwarders.map((f) => f.close()));
    for (const ns of made) {
      try {
        // Every process in the namespace was started by this run (through its host's command).
        const left = nsPids(ns);
        if (left.length > 0) {
          problems.push(`namespace ${ns} still held pids ${left.join(', ')}: SIGKILLed`);
          for (const pid of left) process.kill(pid, 'SIGKILL');
          await waitGone(ns);
        }
        // Deleting the namespace deletes its end of the veth pair, and so the pair.
        ip('netns', 'del', ns);
      } catch (err) {
        problems.push(`namespace ${ns}: ${(err as Error).message}`);
      }
    }
    const leftNs = namespaces().filter((n) => made.includes(n));
    if (leftNs.length > 0) problems.push(`namespaces left: ${leftNs.join(', ')}`);
    // The kernel dismantles a deleted namespace, and its veth pairs, a little later.
    const links = () => ip('-o', 'link', 'show').split('\n').filter((l) => l.includes(`agg${octet}h`));
    const deadline = Date.now() + 10_000;
    while (links().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const leftLinks = links().map((l) => l.split(':')[1]!.trim());
    if (leftLinks.length > 0) problems.push(`links left 10 s after their namespaces: ${leftLinks.join(', ')}`);
    // Last: while anything of this run may still address the /24, it must not take the default route.
    try {
      ip('route', 'del', 'unreachable', `10.213.${octet}.0/24`);
    } catch (err) {
      problems.push(`route 10.213.${octet}.0/24: ${(err as Error).message}`);
    }
    fs.rmSync(root, { recursive: true, force: true });
    return problems;
  };

  try {
    for (const [k, name] of names.entries()) {
      const ns = `${ownPrefix}${name}`;
      // One /30 per host: the root side .4k+1, the namespace side .4k+2.
      const gateway = `10.213.${octet}.${4 * k + 1}`;
      const address = `10.213.${octet}.${4 * k + 2}`;
      const link = `agg${octet}h${k}`;
      ip('netns', 'add', ns);
      made.push(ns);
      ip('link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('addr', 'add', `${gateway}/30`, 'dev', link);
      ip('link', 'set', link, 'up');
      ip('-n', ns, 'addr', 'add', `${address}/30`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      // No default route: from the namespace, only the root side of its own /30 is reachable.
      const routes = ip('-n', ns, '-4', 'route', 'show').trim().split('\n');
      if (routes.length !== 1 || !routes[0]!.startsWith(`10.213.${octet}.${4 * k}/30 `)) {
        throw new Error(`namespace ${ns} has routes beyond its /30: ${routes.join('; ')}`);
      }
      const forwarded = new Map<string, number>();
      for (const target of targets) {
        const f = await forwarder(gateway, target);
        forwarders.push(f);
        forwarded.set(`${target.host}:${target.port}`, f.port);
      }
      const dataDir = path.join(root, name, 'data');
      fs.mkdirSync(dataDir, { recursive: true });
      all.push({
        name,
        namespace: ns,
        address,
        dataDir,
        command: ['ip', 'netns', 'exec', ns],
        reach(url) {
          const u = new URL(url);
          const port = forwarded.get(`${u.hostname}:${u.port}`);
          if (port === undefined) throw new Error(`${u.host} is not forwarded to host ${name}`);
          return hostUrl(url, gateway, port);
        },
        pids: () => nsPids(ns),
      });
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  return { mode: 'netns', why: '', all, logDir: logDirIn(root), host: (name) => find(all, name), destroy };
}

async function waitGone(ns: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (nsPids(ns).length > 0) {
    if (Date.now() > deadline) throw new Error(`processes in ${ns} outlived SIGKILL for 5 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Makes the hosts: namespaces where this machine allows them (TEST_HOSTS=loopback forces the
 * fallback, TEST_HOSTS=netns forbids it), and in CI namespaces or a failure.
 */
export async function makeHosts(names: string[], targets: Target[]): Promise<Hosts> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-hosts-'));
  const asked = askedMode();
  if (asked === 'loopback') return loopbackHosts(names, root, 'TEST_HOSTS=loopback');
  const mustNetns = asked === 'netns' || Boolean(process.env.CI);
  const why = mustNetns ? (asked === 'netns' ? 'TEST_HOSTS=netns' : 'CI') : '';
  const unavailable = netnsUnavailable();
  let failure = unavailable;
  if (unavailable === undefined) {
    try {
      const hosts = await netnsHosts(names, root, targets);
      return { ...hosts, why: why || 'root with ip netns' };
    } catch (err) {
      failure = (err as Error).message;
    }
  }
  if (mustNetns) {
    fs.rmSync(root, { recursive: true, force: true });
    throw new Error(`network namespaces are required (${why}) but cannot be made: ${failure}`);
  }
  return loopbackHosts(names, root, `no namespaces: ${failure}`);
}
