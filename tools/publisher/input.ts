// The publisher CLI's input: a file or stdin checked whole before anything is sent, or generated load.
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { validateEvents, type Event } from '../../shared/schema.js';
import { TOPIC_NAMES, UsageError, type Options } from './options.js';


/** The events a file holds, in its order, with the line each came from (NDJSON). */
function parseInput(text: string): { items: unknown[]; lines: number[] | undefined } {
  const trimmed = text.trim();
  if (trimmed === '') throw new UsageError('the input holds no events');
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    let whole: unknown;
    let isJson = true;
    try {
      whole = JSON.parse(trimmed);
    } catch (err) {
      // A JSON array must parse whole; `{` may still start the first line of NDJSON.
      if (trimmed.startsWith('[')) throw new UsageError(`the input is not valid JSON: ${(err as Error).message}`);
      isJson = false;
    }
    if (isJson) {
      if (Array.isArray(whole)) return { items: whole, lines: undefined };
      const events = (whole as { events?: unknown }).events;
      return { items: Array.isArray(events) ? events : [whole], lines: undefined };
    }
  }
  const items: unknown[] = [];
  const lines: number[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      items.push(JSON.parse(line));
    } catch (err) {
      throw new UsageError(`line ${i + 1} is not valid JSON: ${(err as Error).message}`);
    }
    lines.push(i + 1);
  });
  return { items, lines };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function readInput(file: string): Promise<Event[]> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file === '-' ? 'stdin' : file}: ${(err as Error).message}`);
  }
  const { items, lines } = parseInput(text);
  if (items.length === 0) throw new UsageError('the input holds no events');
  const result = validateEvents(items);
  if (!result.ok) {
    const where = (i: number) => (lines ? `line ${lines[i]}` : `event ${i}`);
    const shown = result.details.slice(0, 10).map((d) => `  ${where(d.index)}: ${d.path || 'event'} ${d.message}`);
    const more = result.details.length > shown.length ? `\n  ... and ${result.details.length - shown.length} more` : '';
    throw new UsageError(`the input has invalid events; nothing was sent:\n${shown.join('\n')}${more}`);
  }
  return result.events;
}

export type Source = { total: number | undefined; take(n: number): Event[] };

export function fileSource(events: Event[]): Source {
  let at = 0;
  return {
    total: events.length,
    take(n) {
      const out = events.slice(at, at + n);
      at += out.length;
      return out;
    },
  };
}

/**
 * Generated events: unique ids per run, topics round robin, and copies spread evenly:
 * event i is a copy when floor((i + 1) R) > floor(i R), which makes exactly floor(N R) of
 * them, never the first. A copy repeats one of the recent originals, as a retry would.
 */
export function generatedSource(opts: Options): Source {
  const run = randomBytes(4).toString('hex');
  const topics = Array.from({ length: opts.topics }, (_, i) => TOPIC_NAMES[i] ?? `topic-${i + 1}`);
  const recent: Event[] = [];
  let i = 0;
  let originals = 0;
  const endless = opts.count === 0;
  return {
    total: endless ? undefined : opts.count,
    take(n) {
      const out: Event[] = [];
      while (out.length < n && (endless || i < opts.count)) {
        const copy = i > 0 && Math.floor((i + 1) * opts.duplicates) > Math.floor(i * opts.duplicates);
        if (copy && recent.length > 0) {
          out.push(recent[Math.floor(Math.random() * recent.length)]!);
        } else {
          const e: Event = {
            topic: topics[originals % topics.length]!,
            event_id: `${run}-${originals}`,
            timestamp: new Date().toISOString(),
            source: 'publish-cli',
            payload: { n: originals, run, amount: Math.round(Math.random() * 10_000) / 100 },
          };
          originals++;
          recent.push(e);
          if (recent.length > 1000) recent.shift();
          out.push(e);
        }
        i++;
      }
      return out;
    },
  };
}
