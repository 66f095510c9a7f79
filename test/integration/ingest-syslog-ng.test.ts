// A real log shipper: syslog-ng (Debian's syslog-ng-core and syslog-ng-mod-http) tails a
// JSON log file and posts its lines to POST /publish as NDJSON, each line's event_id a
// digest of its file name and text, so a line sent again after a restart is a copy. The
// test stops syslog-ng (SIGTERM, then SIGKILL) and the API mid-file while lines keep coming,
// and checks that every line is stored exactly once and the counts balance.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

// The http() destination is a module of its own (syslog-ng-mod-http): without it there is no shipper.
const HTTP_MODULE = fs.existsSync('/usr/lib/syslog-ng') && fs.readdirSync('/usr/lib/syslog-ng').some((v) => fs.existsSync(`/usr/lib/syslog-ng/${v}/libhttp.so`));
const SYSLOG_NG = HTTP_MODULE ? ['/usr/sbin/syslog-ng', '/usr/bin/syslog-ng'].find((p) => fs.existsSync(p)) : undefined;

function config(input: string, baseUrl: string): string {
  return `@version: 3.35
options { stats-freq(0); time-reopen(1); };
source s_app { file("${input}" flags(no-parse) follow-freq(0.1)); };
parser p_json { json-parser(prefix(".json.")); };
destination d_aggregator {
  http(
    url("${baseUrl}/publish")
    method("POST")
    headers("Content-Type: application/x-ndjson")
    body('$(format-json topic="app-log" event_id=$(sha1 \${FILE_NAME}:\${MSG}) timestamp=\${.json.time} source="syslog-ng" payload.line=\${MSG} payload.file=\${FILE_NAME})')
    delimiter("\\n")
    batch-lines(50)
    batch-timeout(200)
    retries(1000)
  );
};
log { source(s_app); parser(p_json); destination(d_aggregator); flags(flow-control); };
`;
}

class SyslogNg {
  private child: ChildProcess | undefined;
  output = '';
  constructor(private readonly dir: string) {}

  start(): void {
    const d = this.dir;
    this.child = spawn(
      SYSLOG_NG!,
      ['-F', '-e', '--no-caps', `--cfgfile=${d}/syslog-ng.conf`, `--persist-file=${d}/syslog-ng.persist`, `--pidfile=${d}/syslog-ng.pid`, `--control=${d}/syslog-ng.ctl`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (b: Buffer) => (this.output = (this.output + b.toString()).slice(-4000));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
  }

  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}

describe('syslog-ng tailing a file into POST /publish', function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let cluster: Cluster;
  let dir: string;
  let shipper: SyslogNg;

  before(async function () {
    if (SYSLOG_NG === undefined) {
      if (process.env.CI) throw new Error('syslog-ng is not installed (CI installs syslog-ng-core and syslog-ng-mod-http: see .ci/run)');
      console.log('    (skipped: syslog-ng or its http module is not installed; apt-get install syslog-ng-core syslog-ng-mod-http)');
      this.skip();
    }
    redis = await startTestRedis();
    cluster = await startCluster({ redisUrl: redis.url, workers: 1 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-syslog-ng-'));
  });
  after(async () => {
    await shipper?.stop('SIGKILL');
    await cluster?.destroy();
    await redis?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`${cluster.logTail()}\n--- syslog-ng\n${shipper?.output}`);
  });

  it('stores every line exactly once across restarts of syslog-ng and of the API', async () => {
    const input = path.join(dir, 'app.log');
    fs.writeFileSync(input, '');
    fs.writeFileSync(path.join(dir, 'syslog-ng.conf'), config(input, cluster.baseUrl));
    const check = spawnSync(SYSLOG_NG!, ['--syntax-only', `--cfgfile=${dir}/syslog-ng.conf`], { encoding: 'utf8' });
    expect(check.status, check.stderr).to.equal(0);

    let written = 0;
    const write = (n: number) => {
      let text = '';
      for (let i = 0; i < n; i++, written++) {
        text += `${JSON.stringify({ time: new Date(Date.UTC(2025, 0, 1) + written * 1000).toISOString(), level: 'info', msg: `request ${written} served`, n: written })}\n`;
      }
      fs.appendFileSync(input, text);
    };
    const stored = async () => (await stats(cluster.baseUrl)).unique_processed;

    shipper = new SyslogNg(dir);
    shipper.start();
    write(300);
    await waitFor(async () => (await stored()) >= 100, { what: 'syslog-ng to ship the first lines' });
    // A clean stop mid-file; lines keep coming while it is down.
    await shipper.stop('SIGTERM');
    write(300);
    shipper.start();
    await waitFor(async () => (await stored()) >= 400, { what: 'syslog-ng to resume' });
    // The API goes away mid-file: syslog-ng's posts fail, and it retries them.
    await cluster.api.term();
    write(300);
    await cluster.startApi();
    await waitFor(async () => (await stored()) >= 700, { what: 'syslog-ng to ship again after the API restart' });
    // Killed outright, and its persist file lost with it: it reads the file from the start
    // again, and every line it had shipped arrives a second time, as a copy.
    await shipper.stop('SIGKILL');
    // Every line taken so far comes again: each becomes exactly one copy.
    const takenBefore = (await stats(cluster.baseUrl)).received;
    fs.rmSync(path.join(dir, 'syslog-ng.persist'), { force: true });
    write(300);
    shipper.start();

    const s = await waitFor(
      async () => {
        const now = await stats(cluster.baseUrl);
        return (
          now.unique_processed === written &&
          now.duplicate_dropped === takenBefore &&
          now.pending === 0 &&
          now.received === now.unique_processed + now.duplicate_dropped &&
          now
        );
      },
      { what: `all ${written} lines stored`, timeoutMs: 60_000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(await stats(cluster.baseUrl))}`);
    });
    const events = await allEvents(cluster.baseUrl, 'app-log');
    expect(events).to.have.length(written);
    const ns = events.map((e) => JSON.parse(e.payload.line).n as number).sort((a, b) => a - b);
    expect(ns).to.deep.equal(Array.from({ length: written }, (_, i) => i));
    expect(events[0].timestamp).to.equal('2025-01-01T00:00:00.000Z');
    // A line sent again is the same event (same digest, same time, same text): a duplicate, never a conflict.
    expect(s.conflicts).to.equal(0);
    expect(s.received).to.equal(written + s.duplicate_dropped);
  });
});
