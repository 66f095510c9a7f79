// The chaos run's command line: the usage text, the flags, and their checks.
import { parseArgs } from 'node:util';
import type { StoreKind } from '../harness/cluster.js';

export const USAGE = `npm run chaos -- [options]

Runs Redis, the API and workers as real processes under mixed load, kills them at random,
kills Redis, resets, cuts and blackholes the links to it (and with --store postgres, SIGKILLs
the run's own PostgreSQL, terminates its sessions and fails the links to it), then checks
from outside that every event answered 202 is stored exactly once.

  --seconds N        how long to load and kill (default 60)
  --kills N          run until N faults were injected instead (e.g. 100 for a long run)
  --workers N        worker processes, at least 2 (default 2)
  --publishers N     concurrent producers (default 4)
  --seed S           replay a run: the seed it printed
  --appendfsync everysec|always   Redis durability (default everysec)
  --store sqlite|postgres         the store (default sqlite; postgres makes a PostgreSQL server
                                  of the run's own with initdb: needs root and Debian's
                                  /usr/lib/postgresql binaries)
  --keep             keep the data directory and logs at the end
  --help
`;

/** A command line the run refuses (exit 2); `withUsage`: print the usage after the message. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly withUsage = false,
  ) {
    super(message);
  }
}

export type ChaosOptions = {
  help: boolean;
  seconds: number;
  /** Run until this many faults were injected; undefined: for `seconds`. */
  killTarget: number | undefined;
  workerCount: number;
  publisherCount: number;
  seed: number;
  appendfsync: 'everysec' | 'always';
  storeKind: StoreKind;
  keep: boolean;
};

function flags(argv: string[] | undefined) {
  try {
    return parseArgs({
      ...(argv && { args: argv }),
      options: {
        seconds: { type: 'string', default: '60' },
        kills: { type: 'string' },
        workers: { type: 'string', default: '2' },
        publishers: { type: 'string', default: '4' },
        seed: { type: 'string' },
        appendfsync: { type: 'string', default: 'everysec' },
        store: { type: 'string', default: 'sqlite' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message, true);
  }
}

/** The options, checked in the order the run has always checked them. */
export function parseOptions(argv?: string[]): ChaosOptions {
  const args = flags(argv);
  const o: ChaosOptions = {
    help: args.help,
    seconds: Number(args.seconds),
    killTarget: args.kills === undefined ? undefined : Number(args.kills),
    workerCount: Number(args.workers),
    publisherCount: Number(args.publishers),
    seed: args.seed === undefined ? Date.now() % 2 ** 31 : Number(args.seed),
    appendfsync: args.appendfsync as 'everysec' | 'always',
    storeKind: args.store as StoreKind,
    keep: args.keep,
  };
  if (o.help) return o;
  for (const [name, n, min] of [['seconds', o.seconds, 1], ['workers', o.workerCount, 2], ['publishers', o.publisherCount, 1], ['seed', o.seed, 0]] as const) {
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number, at least ${min}`);
  }
  if (o.killTarget !== undefined && !(Number.isInteger(o.killTarget) && o.killTarget > 0)) throw new UsageError('--kills must be a whole number above 0');
  if (o.storeKind !== 'sqlite' && o.storeKind !== 'postgres') throw new UsageError('--store must be sqlite or postgres');
  if (o.appendfsync !== 'everysec' && o.appendfsync !== 'always') throw new UsageError('--appendfsync must be everysec or always');
  return o;
}
