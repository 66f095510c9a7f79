// The live stream's own cost and latency (round three, target 5), in three runs of the same
// events on one topic: without subscribers (the rate the machine sustains, the API's CPU
// without a stream), with N subscribers of that topic as fast as it goes (the API's extra CPU
// per delivered message), and with N subscribers while publishing is paced at half the first
// run's rate (delivery latency with cores to spare: on two cores shared with the
// subscribers' own client, an unpaced run cannot show the stream's effect on publishing).
import type { RunResult } from './results.js';
import { runScenario, type RunOptions } from './scenario.js';
import type { Scenario } from './scenarios.js';

/** `pacedRate`: events/s of the paced run, instead of half the rate without subscribers (to find where delivery keeps up). */
export async function runFanout(o: { fanout: Scenario; paced: Scenario; subscribers: number; pacedRate?: number | undefined }, opts: RunOptions): Promise<RunResult[]> {
  const each = { ...opts, stages: false, oneTopicEach: true };
  const base = await runScenario(o.fanout, { ...each, subscribers: 0 });
  const loaded = await runScenario(o.fanout, { ...each, subscribers: o.subscribers });
  const rate = o.pacedRate ?? Math.round(base.endToEndEventsPerSecond / 2);
  const paced = await runScenario({ ...o.paced, rate }, { ...each, subscribers: o.subscribers });
  return [base, loaded, paced];
}
