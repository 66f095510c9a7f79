// `npm run publish -- ...`: a producer on the command line. Sends a file, stdin or generated
// load to POST /publish in batches, the way a careful producer does: it retries what may
// not have arrived (503, 5xx, network errors, timeouts), honouring Retry-After, and never
// what was refused (4xx), since sending the same request again cannot change that answer.
// Copies made by retries are the aggregator's job to drop.
//
// It talks to the service over HTTP only, and reuses shared/schema.ts to check a file
// before sending any of it.
import { readInput, fileSource, generatedSource, type Source } from './publisher/input.js';
import { HELP, MAX_ATTEMPTS, UsageError, parseOptions, type Options } from './publisher/options.js';
import { type Totals, type Verdicts, sleep, sendOnce, backoffMs } from './publisher/send.js';
import { fmt, progressText, summaryText } from './publisher/progress.js';


async function main(): Promise<number> {
  let opts: Options | 'help';
  let source: Source;
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
    if (opts === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    source = opts.file !== undefined ? fileSource(await readInput(opts.file)) : generatedSource(opts);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`publish: ${err.message}\n(npm run publish -- --help explains every option)\n`);
    return 2;
  }
  const o = opts;
  const tty = process.stderr.isTTY === true;
  const totals: Totals = { sent: 0, requests: 0, accepted: 0, retried: 0, failed: 0 };
  const verdicts: Verdicts = { stored: 0, duplicate: 0, conflict: 0, unconfirmed: 0 };
  const stop = new AbortController();
  let interrupted = false;
  let shownErrors = 0;
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;

  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\npublish: stopping: no new requests; a second Ctrl-C quits at once\n');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const say = (line: string) => process.stderr.write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  let shownRetries = 0;
  const reportRetry = (events: number, message: string, waitMs: number) => {
    shownRetries++;
    if (shownRetries <= 5) say(`publish: retrying ${fmt(events)} event(s) in ${(waitMs / 1000).toFixed(1)} s: ${message}`);
    else if (shownRetries === 6) say('publish: more retries; not showing each (the summary counts them)');
  };
  const reportError = (events: number, message: string) => {
    shownErrors++;
    if (shownErrors <= 10) say(`publish: ${fmt(events)} event(s) failed: ${message}`);
    else if (shownErrors === 11) say('publish: more failures; not showing each');
  };

  // With --rate, each request starts at the instant its first event is due.
  const perRequest = o.rate > 0 ? Math.min(o.batch, Math.max(1, Math.ceil(o.rate / 4))) : o.batch;
  let scheduled = 0;

  async function sender(): Promise<void> {
    while (!stop.signal.aborted) {
      if (o.rate > 0) {
        const dueMs = (scheduled / o.rate) * 1000;
        scheduled += perRequest;
        await sleep(dueMs - (performance.now() - started), stop.signal);
        if (stop.signal.aborted) return;
      }
      const events = source.take(perRequest);
      if (events.length === 0) return;
      totals.sent += events.length;
      const body = JSON.stringify({ events });
      for (let attempt = 1; ; attempt++) {
        totals.requests++;
        const outcome = await sendOnce(o, body, events.length);
        if (outcome.kind === 'accepted') {
          totals.accepted += outcome.accepted;
          if (outcome.verdicts === undefined) verdicts.unconfirmed += outcome.accepted;
          else for (const k of ['stored', 'duplicate', 'conflict'] as const) verdicts[k] += outcome.verdicts[k] ?? 0;
          break;
        }
        if (outcome.kind === 'refused') {
          totals.failed += events.length;
          reportError(events.length, outcome.message);
          break;
        }
        if (attempt >= MAX_ATTEMPTS || stop.signal.aborted) {
          totals.failed += events.length;
          reportError(events.length, `${outcome.message} (gave up after ${attempt} attempt(s))`);
          break;
        }
        totals.retried++;
        const waitMs = outcome.waitMs ?? backoffMs(attempt);
        reportRetry(events.length, outcome.message, waitMs);
        await sleep(waitMs, stop.signal);
      }
    }
  }

  const draw = () => {
    const text = progressText(totals, source.total, elapsed(), tty);
    process.stderr.write(tty ? `\r\x1b[2K${text}` : `publish: ${text}\n`);
  };
  const progress = setInterval(draw, tty ? 200 : 5000);
  await Promise.all(Array.from({ length: o.concurrency }, () => sender()));
  clearInterval(progress);
  if (tty) {
    draw();
    process.stderr.write('\n');
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const seconds = elapsed();
  const unsent = source.total === undefined ? 0 : source.total - totals.sent;
  process.stdout.write(summaryText({ totals, verdicts, seconds, unsent, url: o.url, wait: o.wait, interrupted }));
  return totals.failed === 0 && unsent === 0 && totals.accepted === totals.sent && !interrupted ? 0 : 1;
}

process.exitCode = await main();
