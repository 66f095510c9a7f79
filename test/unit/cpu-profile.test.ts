import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { shortUrl, summarizeProfile, type CpuProfile } from '../../bench/cpu-profile.js';
import { waitFor } from '../../tools/harness/wait.js';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });
const OWN = 'file:///srv/agg/dist/shared/store/sqlite/write.js';
const LIB = 'file:///srv/agg/node_modules/bullmq/dist/cjs/classes/job.js';

/**
 * root ─ main (own) ─ commit (own) ─ run (native)
 *                    └ recurse (own) ─ recurse (own)
 *      ├ fromJSON (bullmq)
 *      ├ (garbage collector)
 *      └ (idle)
 */
const PROFILE: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 6, 7, 8] },
    { id: 2, callFrame: frame('main', OWN, 9), children: [3, 5] },
    { id: 3, callFrame: frame('commit', OWN, 34), children: [4] },
    { id: 4, callFrame: frame('run') },
    { id: 5, callFrame: frame('recurse', OWN, 60), children: [9] },
    { id: 6, callFrame: frame('fromJSON', LIB, 190) },
    { id: 7, callFrame: frame('(garbage collector)') },
    { id: 8, callFrame: frame('(idle)') },
    { id: 9, callFrame: frame('recurse', OWN, 60) },
  ],
  // 10 busy samples: run 4, commit 1, recurse (depth 2) 2, fromJSON 1, collector 2; idle 5.
  samples: [4, 4, 4, 4, 3, 9, 9, 6, 7, 7, 8, 8, 8, 8, 8],
  timeDeltas: Array(15).fill(500),
  startTime: 0,
  endTime: 7_500,
};

describe('bench CPU profiles', () => {
  it('gives each frame its share of busy samples, own and with callees', () => {
    const p = summarizeProfile(PROFILE);
    expect(p.busySamples).to.equal(10);
    const by = (name: string) => p.frames.find((f) => f.frame === name);
    expect(by('run (native)')).to.deep.equal({ frame: 'run (native)', self: 0.4, total: 0.4 });
    expect(by('(garbage collector)')?.self).to.equal(0.2);
    expect(by('fromJSON bullmq/dist/cjs/classes/job.js:191')?.self).to.equal(0.1);
    // A frame recurring in one stack is counted once per sample.
    expect(by('recurse shared/store/sqlite/write.js:61')).to.deep.equal({ frame: 'recurse shared/store/sqlite/write.js:61', self: 0.2, total: 0.2 });
    expect(p.frames.map((f) => f.frame)).not.to.include('(idle)');
    expect(p.frames[0]!.frame).to.equal('run (native)');
  });

  it('lists this project\'s code by subtree, one frame per chain of wrappers', () => {
    const p = summarizeProfile(PROFILE);
    // main 0.7, commit 0.5, recurse 0.2: distinct shares, all listed; the library is not.
    expect(p.ownCode.map((f) => [f.frame, f.total])).to.deep.equal([
      ['main shared/store/sqlite/write.js:10', 0.7],
      ['commit shared/store/sqlite/write.js:35', 0.5],
      ['recurse shared/store/sqlite/write.js:61', 0.2],
    ]);
    // A wrapper whose subtree is its one callee's shows as one entry.
    const chain: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)'), children: [2] },
        { id: 2, callFrame: frame('outer', OWN, 1), children: [3] },
        { id: 3, callFrame: frame('inner', OWN, 2) },
      ],
      samples: [3, 3],
      timeDeltas: [1, 1],
      startTime: 0,
      endTime: 2,
    };
    expect(summarizeProfile(chain).ownCode).to.have.length(1);
  });

  it('names files by their place in this project or in their package', () => {
    expect(shortUrl('file:///srv/agg/dist/services/api/publish/items.js')).to.equal('services/api/publish/items.js');
    expect(shortUrl(LIB)).to.equal('bullmq/dist/cjs/classes/job.js');
    expect(shortUrl('node:internal/process/task_queues')).to.equal('node:internal/process/task_queues');
    expect(shortUrl('')).to.equal('');
  });

  it('profiles a real process between two signals, and writes nothing before the second', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-profile-'));
    try {
      const preload = path.resolve(import.meta.dirname, '../../bench/cpu-profile-preload.ts');
      // Busy in its own function for as long as it lives; says when the preload is in place.
      const body = 'function spin(){const t=Date.now();let x=0;while(Date.now()-t<5)x+=Math.sqrt(x+1);return x}setInterval(spin,1);process.send("up")';
      const child = spawn(process.execPath, ['--import', 'tsx', '--import', preload, '-e', body], {
        env: { ...process.env, BENCH_CPU_PROFILE_DIR: dir },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      try {
        await new Promise<void>((resolve) => child.once('message', () => resolve()));
        child.kill('SIGUSR2');
        await new Promise((r) => setTimeout(r, 400));
        expect(fs.readdirSync(dir)).to.deep.equal([]);
        child.kill('SIGUSR2');
        const file = path.join(dir, `${child.pid}.cpuprofile`);
        await waitFor(() => fs.existsSync(file), { timeoutMs: 10_000, what: 'the profile' });
        const p = summarizeProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile);
        expect(p.busySamples).to.be.greaterThan(50);
        expect(p.frames.some((f) => f.frame.startsWith('spin '))).to.equal(true);
        expect(child.exitCode).to.equal(null);
      } finally {
        child.kill('SIGKILL');
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
