// Preloaded into a service process by the bench (`--import`) when it profiles a run: V8's
// sampling profiler through node:inspector, started by the first SIGUSR2 and stopped by the
// second, which writes `<BENCH_CPU_PROFILE_DIR>/<pid>.cpuprofile`. Node refuses `--cpu-prof`
// in NODE_OPTIONS, and `--cpu-prof` would cover the start and the shutdown too: the signals
// bound the profile to the window the bench measures (first request to drained queue).
import fs from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.BENCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  /** Microseconds between samples: fine enough for per-event costs of a few µs over seconds of load. */
  const interval = Number(process.env.BENCH_CPU_PROFILE_INTERVAL_US ?? 500);
  let running = false;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval }, () => session.post('Profiler.start')));
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, result) => {
      const file = path.join(dir, `${process.pid}.cpuprofile`);
      if (err) fs.writeFileSync(`${file}.error`, String(err));
      else {
        // Written aside, then renamed: the bench reads a profile only once it is whole.
        fs.writeFileSync(`${file}.partial`, JSON.stringify(result.profile));
        fs.renameSync(`${file}.partial`, file);
      }
    });
  });
}
