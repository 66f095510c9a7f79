// The Markdown of what a run measures beside its scenarios: the JetStream reference, the
// store's size at the end of each scenario, and a worker's start on the 10 M prefill.
import type { JetStreamResult } from './jetstream.js';
import { fmt } from './report.js';
import type { RunResult } from './results.js';
import type { WorkerStart } from './start-figure.js';

function jetStreamTable(runs: JetStreamResult[]): string[] {
  if (runs.length === 0) return [];
  const lines = [
    '',
    "NATS JetStream's deduplicating publish, the reference (same run; a nats-server of the bench's own with its defaults, file storage, which syncs to disk every two minutes rather than at each ack; each message an event of the bench's stream as JSON, its `topic/event_id` in the `Nats-Msg-Id` header, a stream with a 10-minute duplicate window; 20% re-sent ids; the nats.js client in a process of its own, each of N publishers awaiting its ack before the next):",
    '',
    '| run | messages | in flight | messages/s | p50 / p99 ms | nats-server CPU µs per message | client CPU µs per message | nats-server peak RSS MB | copies acknowledged as duplicates / re-sent | exact |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const j of runs) {
    lines.push(
      `| ${j.name} | ${fmt(j.messages)} | ${fmt(j.inFlight)} | **${fmt(j.messagesPerSecond)}** | ${j.run.latencyMs.p50.toFixed(1)} / ${j.run.latencyMs.p99.toFixed(1)} | ${j.serverMicrosPerMessage.toFixed(1)} | ${((j.run.cpuSeconds * 1e6) / j.messages).toFixed(1)} | ${j.serverPeakRssMb} | ${fmt(j.run.duplicates)} / ${fmt(j.run.resent)} | ${j.exact ? 'yes' : `**no** (stream holds ${fmt(j.run.stored)} of ${fmt(j.run.originals)} identities)`} |`,
    );
  }
  return lines;
}

function storeSizeTable(results: RunResult[]): string[] {
  const sized = results.filter((r) => r.storeBytes !== undefined && r.subscribers === undefined);
  if (sized.length === 0) return [];
  const lines = [
    '',
    'The store on disk at the end of each scenario, once its workers stopped (SQLite: the file and its WAL; PostgreSQL: `pg_database_size`):',
    '',
    '| scenario | store | stored identities | size MB | bytes per stored identity |',
    '| --- | --- | ---: | ---: | ---: |',
  ];
  for (const r of sized) {
    lines.push(`| ${r.scenario.name} | ${r.store} | ${fmt(r.final.unique_processed)} | ${fmt(r.storeBytes! / 1e6)} | **${fmt(r.storeBytes! / Math.max(1, r.final.unique_processed))}** |`);
  }
  return lines;
}

function workerStartLines(w: WorkerStart | undefined): string[] {
  if (w === undefined) return [];
  return [
    '',
    `Worker start (bench/worker-start.ts \`measure\`, on a copy of the ${fmt(w.identities)}-event prefill of random ids: a worker spawned with one job of 2 events queued): first commit **${fmt(w.firstCommitMs)} ms** after its spawn (answered ${JSON.stringify(w.firstCommit)}), RSS then ${w.rssMbAtFirstCommit === undefined ? '–' : Math.round(w.rssMbAtFirstCommit)} MB; its filter of stored keys built after ${(w.filterDoneMs / 1000).toFixed(1)} s; peak RSS ${Math.round(w.peakRssMb)} MB.`,
  ];
}

export function referenceMarkdown(o: { results: RunResult[]; jetstream: JetStreamResult[]; workerStart: WorkerStart | undefined }): string {
  const lines = [...jetStreamTable(o.jetstream), ...storeSizeTable(o.results), ...workerStartLines(o.workerStart)];
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
