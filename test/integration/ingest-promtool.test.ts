// A real scraper's view of GET /metrics: Prometheus' own `promtool check metrics` (Debian's
// prometheus package) reads the exposition after traffic on every publishing path, and
// finds nothing to complain about (format and naming lint alike).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { expect } from 'chai';
import { publish, request } from '../../tools/harness/http.js';
import { drained } from '../../tools/harness/http.js';
import { useCluster } from '../support/suite.js';

const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => fs.existsSync(p));

describe('GET /metrics under promtool', function () {
  this.timeout(60_000);
  before(function () {
    if (PROMTOOL !== undefined) return;
    if (process.env.CI) throw new Error('promtool is not installed (CI installs Debian\'s prometheus package: see .ci/run)');
    console.log('    (skipped: promtool is not installed; apt-get install prometheus)');
    this.skip();
  });
  const shared = useCluster({ workers: 1 });

  it('passes promtool check metrics after publishes, OTLP and Segment traffic, and errors', async () => {
    const base = shared.cluster.baseUrl;
    expect((await publish(base, { topic: 'm', event_id: 'm-1', timestamp: '2025-01-01T00:00:00Z', source: 's', payload: {} })).status).to.equal(202);
    expect((await publish(base, { topic: 'm' })).status).to.equal(422);
    const logs = { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'prom' } }] }, scopeLogs: [{ logRecords: [{ timeUnixNano: '1', body: { stringValue: 'x' } }] }] }] };
    expect((await request(base, 'POST', '/v1/logs', logs)).status).to.equal(200);
    const batch = { batch: [{ type: 'track', event: 'Clicked', messageId: 'c-1', timestamp: '2025-01-01T00:00:00Z' }] };
    expect((await request(base, 'POST', '/v1/batch', batch)).status).to.equal(200);
    await drained(base, 3);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).to.include('aggregator_publish_requests_total');
    const check = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect({ status: check.status, out: check.stdout + check.stderr }).to.deep.equal({ status: 0, out: '' });
  });
});
