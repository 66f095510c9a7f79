// The dashboard in a real browser (Debian's chromium driven by playwright-core) against real
// processes: it asks for the key when reads need one, the numbers move as events arrive
// and are processed, topics lead to their latest events, an event opens with its payload,
// and the health of Redis and the workers shows. The chart is drawn from the API's own
// last minutes as soon as a page opens; topics show their copies and conflicts, an event its
// copies and first and last sighting; at 1400x1000 the workers' table is in view without
// scrolling. Screenshots go to test-artifacts/.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { publish } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { waitFor } from '../../tools/harness/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '../../test-artifacts');
const KEY = 'k-dashboard';
const auth = { headers: { authorization: `Bearer ${KEY}` } };

describe('dashboard in a browser', function () {
  let redis: TestRedis;
  let cluster: Cluster;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      // CI installs chromium (.ci/run); anywhere else the test says what it needs and steps aside.
      if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing: CI must install chromium (apt-get install chromium)`);
      console.log(`    (skipped: ${CHROMIUM} is missing; apt-get install chromium to run the browser test)`);
      this.skip();
    }
    redis = await startTestRedis();
    // Reads need the key too, so the page has to ask for it.
    cluster = await startCluster({ redisUrl: redis.url, workers: 1, env: { API_KEY: KEY, READ_API_KEY: KEY } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (m) => {
      // The browser reports each non-2xx fetch (the 401 that makes the page ask for the key,
      // the 503 of /ready while Redis is away); anything else, a CSP refusal say, is a fault.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await cluster?.destroy();
    await redis?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state !== 'failed') return;
    console.log(cluster.logTail());
    await page?.screenshot({ path: path.join(ARTIFACTS, 'dashboard-failure.png'), fullPage: true }).catch(() => undefined);
  });

  const text = (selector: string) => page.locator(selector).first().textContent({ timeout: 5_000 });
  const shows = (selector: string, expected: string | RegExp, timeoutMs = 15_000) =>
    waitFor(
      async () => {
        const t = (await text(selector)) ?? '';
        return (typeof expected === 'string' ? t === expected : expected.test(t)) || undefined;
      },
      { what: `${selector} to show ${String(expected)}`, timeoutMs },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; it shows ${JSON.stringify(await text(selector).catch(() => '?'))}`);
    });

  it('asks for the API key, refuses a wrong one, and shows the counts with the right one', async () => {
    await page.goto(`${cluster.baseUrl}/`);
    await page.locator('#keybox.open').waitFor({ timeout: 10_000 });
    await page.fill('#keyinput', 'wrong');
    await page.click('#keyform button[type=submit]');
    await shows('#keymsg', /That key was refused/);
    await page.fill('#keyinput', KEY);
    await page.click('#keyform button[type=submit]');
    await page.locator('#keybox.open').waitFor({ state: 'detached', timeout: 10_000 }).catch(() => undefined);
    expect(await page.locator('#keybox.open').count()).to.equal(0);
    await shows('#received', '0');
    await shows('#stored', '0');
    await shows('#h-redis', 'redis: ok');
    await shows('#h-store', 'store: ok');
    await shows('#h-workers', 'workers: 1');
  });

  it('moves the numbers and the chart as events are published and processed', async () => {
    const orders = Array.from({ length: 120 }, (_, i) => event({ topic: 'dash-orders', payload: { amount: i, currency: 'EUR' } }));
    const clicks = Array.from({ length: 30 }, (_, i) => event({ topic: 'dash-clicks', payload: { x: i, note: '<img src=x onerror=alert(1)>' } }));
    const first = Array.from({ length: 3 }, () => event({ topic: 'dash-first' }));
    // Ten copies, four of them with content of their own: conflicts.
    const copies = orders.slice(0, 10).map((e, i) => (i < 4 ? { ...e, payload: { changed: i } } : e));
    expect((await publish(cluster.baseUrl, { events: [...first, ...orders, ...clicks] }, auth)).status).to.equal(202);
    expect((await publish(cluster.baseUrl, copies, auth)).status).to.equal(202);
    await shows('#received', '163');
    await shows('#stored', '153');
    await shows('#duplicates', '10');
    await shows('#conflicts', '4');
    await shows('#pending', '0');
    await shows('#failed', '0');
    // A point of the received line above the zero line: a rate was drawn.
    await waitFor(
      async () => {
        const points = (await page.getAttribute('#l-recv', 'points')) ?? '';
        return points.split(' ').some((p) => Number(p.split(',')[1]) < 146) || undefined;
      },
      { what: 'the chart to show a rate', timeoutMs: 15_000 },
    );

    // With the worker stopped, what arrives waits: pending shows it.
    await cluster.workers[0]!.term();
    await shows('#h-workers', /^workers: 0/);
    const late = Array.from({ length: 20 }, () => event({ topic: 'dash-late' }));
    expect((await publish(cluster.baseUrl, late, auth)).status).to.equal(202);
    await shows('#pending', '20');
    await shows('#received', '183');
    await cluster.startWorker();
    await shows('#pending', '0');
    await shows('#stored', '173');
    await shows('#h-workers', 'workers: 1');
  });

  it('lists topics by size and shows the latest events of the one chosen, payload included', async () => {
    await shows('#topicrows tr:first-child td:first-child', 'dash-orders');
    await shows('#topicrows tr[data-topic="dash-clicks"] td:nth-child(2)', '30');
    // The ten copies were of dash-orders, four of them conflicting.
    await shows('#topicrows tr[data-topic="dash-orders"] td:nth-child(3)', '10');
    await shows('#topicrows tr[data-topic="dash-orders"] td:nth-child(4)', '4');
    await shows('#topicrows tr[data-topic="dash-clicks"] td:nth-child(3)', '0');
    // The workers' table in view, without scrolling, and what its count includes said.
    const workers = await page.locator('section.workers').boundingBox();
    expect(workers, 'the workers section').not.to.equal(null);
    expect(workers!.y + workers!.height).to.be.at.most(1000);
    expect(await page.evaluate('window.scrollY')).to.equal(0);
    expect(await text('section.workers thead')).to.match(/events committed\s*copies included/);
    await shows('#workerrows tr:first-child td:nth-child(3)', '20');
    // On SQLite the one worker holds the writer lease.
    await shows('#workerrows tr:first-child td:nth-child(2)', 'ok, writer');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-viewport.png') });
    console.log(`      screenshot: ${path.join(ARTIFACTS, 'dashboard-viewport.png')}`);

    await page.click('#topicrows tr[data-topic="dash-clicks"]');
    await shows('#eventstitle', 'Latest events in dash-clicks');
    // Reads need the key, which an EventSource cannot send: the list is polled.
    await shows('#eventsmode', 'refreshed every 6 s');
    const stored = await eventsOf(cluster.baseUrl, 'dash-clicks');
    const newest = stored.at(-1)!;
    await shows('#eventrows tr:first-child td:first-child', String(newest.seq));
    expect(await page.locator('#eventrows tr').count()).to.equal(25);

    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    await page.click('#eventrows tr:first-child');
    await page.locator('#eventdialog[open]').waitFor({ timeout: 5_000 });
    expect(await text('#eventhead')).to.equal(`dash-clicks / ${newest.event_id} (seq ${newest.seq})`);
    // Shown as text: the markup in the payload is not markup on the page.
    expect(await text('#payload')).to.equal(JSON.stringify(newest.payload, null, 2));
    expect(await page.locator('#payload img').count()).to.equal(0);
    // What became of its copies, from the lookup: one copy, no conflict.
    await shows('#ev-copies', '1');
    await shows('#ev-conflicts', '0');
    const lookup = await lookupOf(cluster.baseUrl, 'dash-clicks', newest.event_id);
    expect(await text('#ev-first')).to.equal(lookup.first_seen_at);
    expect(await text('#ev-last')).to.equal(lookup.last_seen_at);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-event.png') });
    await page.click('#closedialog');
    // Two more copies of it, one with content of its own: the dialog counts them.
    const again = { topic: 'dash-clicks', event_id: newest.event_id, timestamp: lookup.event.timestamp, source: lookup.event.source, payload: newest.payload };
    expect((await publish(cluster.baseUrl, [again, { ...again, payload: { other: true } }], auth)).status).to.equal(202);
    await waitFor(async () => (await lookupOf(cluster.baseUrl, 'dash-clicks', newest.event_id)).copies === 3 || undefined, { what: 'the copies to be processed' });
    await page.click('#eventrows tr:first-child');
    await shows('#ev-copies', '3');
    await shows('#ev-conflicts', '1');
    const later = await lookupOf(cluster.baseUrl, 'dash-clicks', newest.event_id);
    expect(await text('#ev-last')).to.equal(later.last_seen_at);
    expect(later.last_seen_at).not.to.equal(later.first_seen_at);
    await page.click('#closedialog');
    expect(await page.locator('#eventdialog[open]').count()).to.equal(0);
    // The page finds a topic's newest events by looking back from the newest seq; a small
    // topic far back (seq 1 to 3) takes it several steps.
    await page.click('#topicrows tr[data-topic="dash-first"]');
    await shows('#eventstitle', 'Latest events in dash-first');
    await waitFor(async () => (await page.locator('#eventrows tr').count()) === 3 || undefined, { what: 'three events of dash-first' });
    const firsts = await eventsOf(cluster.baseUrl, 'dash-first');
    expect(await page.locator('#eventrows tr td:first-child').allTextContents()).to.deep.equal(firsts.map((e) => String(e.seq)).reverse());
  });

  it('shows Redis down, and back', async function () {
    await redis.kill();
    try {
      await shows('#h-redis', 'redis: down');
      await shows('#pending', '–');
    } finally {
      await redis.start();
    }
    await shows('#h-redis', 'redis: ok', 20_000);
    await shows('#pending', '0');
  });

  it('ran without script errors or refusals from the Content-Security-Policy', () => {
    expect(consoleErrors).to.deep.equal([]);
  });
});

describe('dashboard in a browser, reads open', function () {
  let redis: TestRedis;
  let cluster: Cluster;
  let browser: Browser;
  let page: Page;
  const requests: string[] = [];
  const pageErrors: string[] = [];

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing: CI must install chromium (apt-get install chromium)`);
      console.log(`    (skipped: ${CHROMIUM} is missing; apt-get install chromium to run the browser test)`);
      this.skip();
    }
    redis = await startTestRedis();
    cluster = await startCluster({ redisUrl: redis.url, workers: 1 });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('request', (r) => requests.push(new URL(r.url()).pathname + new URL(r.url()).search));
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });
  after(async () => {
    await browser?.close();
    await cluster?.destroy();
    await redis?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state !== 'failed') return;
    console.log(cluster.logTail());
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page?.screenshot({ path: path.join(ARTIFACTS, 'dashboard-live-failure.png'), fullPage: true }).catch(() => undefined);
  });

  const text = (selector: string) => page.locator(selector).first().textContent({ timeout: 5_000 });
  const shows = (selector: string, expected: string, timeoutMs = 15_000) =>
    waitFor(async () => (await text(selector)) === expected || undefined, { what: `${selector} to show ${expected}`, timeoutMs }).catch(
      async (err: Error) => {
        throw new Error(`${err.message}; it shows ${JSON.stringify(await text(selector).catch(() => '?'))}`);
      },
    );

  it('draws the throughput chart the moment the page opens, from the API\'s last minutes', async () => {
    const samples = async () => {
      const html = await (await fetch(`${cluster.baseUrl}/`)).text();
      const seed = JSON.parse(/<script type="application\/json" id="rates-seed">(.*?)<\/script>/.exec(html)?.[1] ?? '{}') as { samples?: { processed: number }[] };
      return seed.samples ?? [];
    };
    // The API samples its totals every second, from its start: a sample before the events
    // first (on a slow machine the worker can store them before the API's first sample),
    // then one that holds the rise.
    await waitFor(async () => (await samples()).length >= 1 || undefined, { what: 'the API to have sampled once', timeoutMs: 20_000 });
    const first = Array.from({ length: 3 }, () => event({ topic: 'live-orders' }));
    expect((await publish(cluster.baseUrl, { events: first })).status).to.equal(202);
    let seen: { processed: number }[] = [];
    await waitFor(
      async () => {
        const s = (seen = await samples());
        return (s.length >= 2 && s[0]!.processed === 0 && s.at(-1)!.processed === 3) || undefined;
      },
      { what: 'the API to have sampled before and after the events', timeoutMs: 20_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; its samples: ${JSON.stringify(seen.slice(0, 3))} ... ${JSON.stringify(seen.slice(-3))} (${seen.length})`);
    });
    await page.goto(`${cluster.baseUrl}/`);
    // At once, before the page has polled twice: only the server's samples can draw it.
    const points = ((await page.getAttribute('#l-proc', 'points')) ?? '').split(' ').filter((p) => p !== '');
    expect(points.length, 'points drawn at load').to.be.at.least(2);
    expect(points.some((p) => Number(p.split(',')[1]) < 146)).to.equal(true);
    expect(((await page.getAttribute('#l-recv', 'points')) ?? '').split(' ').filter((p) => p !== '').length).to.equal(points.length);
    expect(pageErrors).to.deep.equal([]);
  });

  it('shows a new event of the chosen topic as it is stored, without reloading, over the stream', async () => {
    // Only this page load's requests count.
    await page.goto('about:blank');
    requests.length = 0;
    await page.goto(`${cluster.baseUrl}/`);
    await shows('#eventstitle', 'Latest events in live-orders');
    await shows('#eventsmode', 'live');
    await waitFor(async () => (await page.locator('#eventrows tr').count()) === 3 || undefined, { what: 'the three stored events' });
    const polledBefore = requests.filter((r) => r.startsWith('/events?')).length;

    const next = event({ topic: 'live-orders' });
    const sentAt = Date.now();
    expect((await publish(cluster.baseUrl, next)).status).to.equal(202);
    await shows('#eventrows tr:first-child td:nth-child(2)', next.event_id as string);
    const ms = Date.now() - sentAt;
    expect(await page.locator('#eventrows tr').count()).to.equal(4);
    // It came over the one stream the page opened, not from polling /events.
    expect(requests.filter((r) => r.startsWith('/events/stream?topic=live-orders'))).to.have.length(1);
    expect(requests.filter((r) => r.startsWith('/events?')).length).to.equal(polledBefore);
    expect(pageErrors).to.deep.equal([]);
    console.log(`      the new event showed ${ms} ms after its publish was answered`);
  });
});

/** One identity's lookup, read with the key. */
type Lookup = { event: { timestamp: string; source: string }; copies: number; conflicts: number; first_seen_at: string; last_seen_at: string };
async function lookupOf(baseUrl: string, topic: string, id: string): Promise<Lookup> {
  const res = await fetch(`${baseUrl}/events/${encodeURIComponent(topic)}/${encodeURIComponent(id)}`, auth);
  expect(res.status).to.equal(200);
  return (await res.json()) as Lookup;
}

/** A topic's events as the API has them, read with the key. */
async function eventsOf(baseUrl: string, topic: string): Promise<{ seq: number; event_id: string; payload: unknown }[]> {
  const res = await fetch(`${baseUrl}/events?topic=${encodeURIComponent(topic)}&limit=1000`, auth);
  expect(res.status).to.equal(200);
  const body = (await res.json()) as { events: { seq: number; event_id: string; payload: unknown }[]; next_after: number | null };
  expect(body.next_after).to.equal(null);
  return body.events;
}
