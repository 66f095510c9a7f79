// The dashboard at a million topics: /stats lists at most 1,000 of them, and the page shows
// those, says how many more there are, and keeps refreshing. /stats is answered here with
// what a store of a million topics answers, so no million topics need storing.
import fs from 'node:fs';
import { expect } from 'chai';
import { chromium, type Browser } from 'playwright-core';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { waitFor } from '../../tools/harness/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const CHROMIUM = '/usr/bin/chromium';
const TOPICS = 1_000_000;
const LISTED = 1000;

function millionTopicStats() {
  const names = Array.from({ length: LISTED }, (_, i) => `topic-${String(i).padStart(7, '0')}`);
  return {
    received: 3_000_000,
    unique_processed: 2_000_000,
    duplicate_dropped: 1_000_000,
    conflicts: 0,
    redeliveries: 0,
    pending: 0,
    topics: names,
    topics_count: TOPICS,
    topics_truncated: true,
    uptime_seconds: 60,
    per_topic: Object.fromEntries(names.map((n, i) => [n, 1 + (i % 7)])),
    duplicates_per_topic: {},
    conflicts_per_topic: {},
    queue: { pending_jobs: 0, waiting: 0, active: 0, delayed: 0, failed: 0 },
    workers: { live: 0, list: [] },
    store: { kind: 'sqlite', committed_jobs: 1, bytes: 1 },
    redis: 'ok',
  };
}

describe('dashboard with a million topics', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  let cluster: Cluster;
  let browser: Browser;

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing: CI must install chromium (apt-get install chromium)`);
      console.log(`    (skipped: ${CHROMIUM} is missing; apt-get install chromium to run the browser test)`);
      this.skip();
    }
    redis = await startTestRedis();
    cluster = await startCluster({ redisUrl: redis.url, workers: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  after(async () => {
    await browser?.close();
    await cluster?.destroy();
    await redis?.stop();
  });

  it('lists the 1,000 topics /stats gives, says how many more there are, and keeps refreshing', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    const body = JSON.stringify(millionTopicStats());
    await page.route('**/stats', (route) => route.fulfill({ status: 200, contentType: 'application/json', body }));
    await page.goto(`${cluster.baseUrl}/`);
    await page.locator('#topicsmore').waitFor({ timeout: 15_000 });
    expect(await page.locator('#topiccount').textContent()).to.equal('1,000,000 topics');
    expect(await page.locator('#topicsmore').textContent()).to.match(/^999,000 more topics not listed: these are the first 1,000 by name/);
    expect(await page.locator('#topicrows tr').count()).to.equal(LISTED + 1);
    // Still polling: two more refreshes come, each redrawing the table.
    const updated = async () => (await page.locator('#updated').textContent()) ?? '';
    const first = await updated();
    const second = await waitFor(async () => (await updated()) !== first && (await updated()), { timeoutMs: 10_000, what: 'a refresh' });
    await waitFor(async () => (await updated()) !== second, { timeoutMs: 10_000, what: 'another refresh' });
    expect(errors).to.deep.equal([]);
    await page.close();
  });
});
