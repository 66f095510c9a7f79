// The dashboard's script, run in the browser (checked against the DOM library by this
// folder's tsconfig.json, never against Node's types). It polls /stats and /ready; the
// latest events of the chosen topic come live from /events/stream (an EventSource) while
// reads are open. When reads need the key (READ_API_KEY), it asks for it once and keeps it
// in sessionStorage, so it dies with the tab; and since an EventSource cannot send an
// Authorization header (and a key in a URL would end up in logs), the events are then
// polled from /events instead.
//
// Data goes into the page with textContent only: topics, ids and payloads are whatever
// producers sent.

/** What the page reads of GET /stats (services/api/stats.ts). */
type Stats = {
  received: number;
  unique_processed: number;
  duplicate_dropped: number;
  /** Of the dropped copies, those whose content differed from the stored event. */
  conflicts: number;
  /** Jobs processed again after a worker died: the system's own retries. */
  redeliveries: number;
  topics_count: number;
  /** null, like queue and workers, while Redis is unreachable. */
  pending: number | null;
  topics: string[];
  uptime_seconds: number;
  per_topic: Record<string, number>;
  queue: { waiting: number; active: number; delayed: number; failed: number } | null;
  workers: { live: number; list: WorkerRow[] } | null;
  store: { committed_jobs: number; bytes: number };
};

type WorkerRow = { id: string; status: string; error: string | null; committed_events: number };

/** GET /ready, both when ready (200) and when not (503). */
type Ready = { checks?: { redis?: string; store?: string } };

type StoredEvent = {
  seq: number;
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: unknown;
  processed_at: string;
};

type EventsPage = { events: StoredEvent[]; next_after: number | null };

type Sample = { t: number; received: number; processed: number };
type Rate = { t: number; recv: number; proc: number };

const KEY = 'aggregator-api-key';
const WINDOW_MS = 5 * 60 * 1000;
const POLL_MS = 2000;
const LATEST = 25;
const samples: Sample[] = [];
let stats: Stats | null = null;
let topic: string | null = null;
let events: StoredEvent[] = [];
let keyNeeded = false;
let tick = 0;
/** The live list's stream, while reads are open and the tab is visible. */
let source: EventSource | null = null;

/** The page's markup is fixed (index.html): a missing id is a bug, said so at once. */
function $(id: string): HTMLElement;
function $<T extends Element>(id: string, kind: abstract new () => T): T;
function $(id: string, kind: abstract new () => Element = HTMLElement): Element {
  const found = document.getElementById(id);
  if (!(found instanceof kind)) throw new Error(`#${id} is missing from the page or is not a ${kind.name}`);
  return found;
}

const fmt = (n: number | null | undefined): string => (n === null || n === undefined ? '–' : n.toLocaleString('en-US'));

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string | number | null, cls?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

/** The API refused the key (or wants one): the page asks rather than reports an error. */
class Unauthorized extends Error {}

async function api<T>(path: string): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized();
  const body: unknown = await res.json();
  // /ready answers 503 with the same body, naming what fails: that is data, not an error.
  if (!res.ok && path !== '/ready') {
    const message = typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string' ? body.message : '';
    throw new Error(message || `HTTP ${res.status}`);
  }
  return body as T;
}

function askKey(wrong: boolean): void {
  keyNeeded = true;
  $('keymsg').textContent = wrong ? 'That key was refused. Enter the read key:' : 'Reads need a key (READ_API_KEY). Enter it:';
  $('keybox').classList.add('open');
  $('keyinput').focus();
}

function setPill(id: string, state: 'ok' | 'warn' | 'bad', text: string): void {
  const pill = $(id);
  pill.className = `pill ${state}`;
  const label = pill.querySelector('span:last-child');
  if (label === null) throw new Error(`#${id} has no label`);
  label.textContent = text;
}

function renderCounts(s: Stats): void {
  $('received').textContent = fmt(s.received);
  $('stored').textContent = fmt(s.unique_processed);
  $('duplicates').textContent = fmt(s.duplicate_dropped);
  $('pending').textContent = fmt(s.pending);
  $('failed').textContent = fmt(s.queue?.failed);
  $('conflicts').textContent = fmt(s.conflicts);
  $('redeliveries').textContent = `${fmt(s.redeliveries)} redelivered jobs`;
  $('topiccount').textContent = `${fmt(s.topics_count)} topics`;
  const processed = Math.max(1, s.unique_processed + s.duplicate_dropped);
  $('dupshare').textContent = s.received > 0 ? `${((100 * s.duplicate_dropped) / processed).toFixed(1)}% of processed` : '';
}

function renderQueue(s: Stats): void {
  const q = s.queue;
  const rows: [string, string | number | null | undefined][] = [
    ['waiting jobs', q?.waiting],
    ['active jobs', q?.active],
    ['delayed jobs', q?.delayed],
    ['failed jobs', q?.failed],
    ['pending events', s.pending],
    ['committed jobs', s.store.committed_jobs],
    ['store size', `${(s.store.bytes / 1048576).toFixed(1)} MiB`],
    ['API uptime', `${s.uptime_seconds} s`],
  ];
  const dl = $('queuelist');
  dl.replaceChildren();
  for (const [name, value] of rows) {
    dl.appendChild(el('dt', name));
    const dd = el('dd', typeof value === 'string' ? value : fmt(value));
    if (name === 'failed jobs' && typeof value === 'number' && value > 0) dd.className = 'bad-text';
    dl.appendChild(dd);
  }
}

function renderWorkers(s: Stats): void {
  const body = $('workerrows');
  body.replaceChildren();
  const list = s.workers?.list ?? [];
  for (const w of list) {
    const tr = el('tr');
    tr.appendChild(el('td', w.id));
    tr.appendChild(el('td', w.status, w.status === 'ok' ? '' : 'bad-text'));
    tr.appendChild(el('td', fmt(w.committed_events), 'num'));
    tr.appendChild(el('td', w.error ?? ''));
    body.appendChild(tr);
  }
  if (list.length === 0) {
    const tr = el('tr');
    const td = el('td', s.workers ? 'no live worker: events wait in the queue' : 'unknown (Redis unreachable)', 'bad-text');
    td.colSpan = 4;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  const live = s.workers?.live ?? null;
  const failing = list.filter((w) => w.status !== 'ok').length;
  const state = live !== null && live > 0 ? (failing > 0 ? 'warn' : 'ok') : 'bad';
  setPill('h-workers', state, `workers: ${live ?? '?'}${failing > 0 ? ` (${failing} failing)` : ''}`);
}

function renderTopics(s: Stats): void {
  const body = $('topicrows');
  body.replaceChildren();
  const entries = Object.entries(s.per_topic).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const max = entries[0]?.[1] ?? 1;
  for (const [name, count] of entries) {
    const tr = el('tr', null, `pick${name === topic ? ' sel' : ''}`);
    tr.dataset.topic = name;
    tr.appendChild(el('td', name));
    tr.appendChild(el('td', fmt(count), 'num'));
    const td = el('td');
    const bar = el('div', null, 'bar');
    bar.style.width = `${Math.max(2, (100 * count) / max)}%`;
    td.appendChild(bar);
    td.style.width = '30%';
    tr.appendChild(td);
    tr.addEventListener('click', () => chooseTopic(name));
    body.appendChild(tr);
  }
  // /stats lists at most 1,000 topics, the first by name: the page says so rather than
  // pass them off as all of them (a million topics stay one bounded answer and table).
  if (s.topics_count > entries.length) {
    const tr = el('tr');
    const td = el('td', `${fmt(s.topics_count - entries.length)} more topics not listed: these are the first ${fmt(entries.length)} by name (GET /topics pages through all)`, 'muted');
    td.id = 'topicsmore';
    td.colSpan = 3;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  if (entries.length === 0) {
    const tr = el('tr');
    const td = el('td', 'no events stored yet', 'muted');
    td.colSpan = 3;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  const biggest = entries[0];
  if (topic === null && biggest !== undefined) chooseTopic(biggest[0]);
}

function renderChart(): void {
  const now = Date.now();
  const pts: Rate[] = [];
  let prev: Sample | undefined;
  for (const b of samples) {
    const a = prev;
    prev = b;
    if (a === undefined) continue;
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    pts.push({ t: b.t, recv: Math.max(0, (b.received - a.received) / dt), proc: Math.max(0, (b.processed - a.processed) / dt) });
  }
  let max = 1;
  for (const p of pts) max = Math.max(max, p.recv, p.proc);
  // The axis ends on a round number: 1, 2, 3… times a power of ten.
  const nice = Math.pow(10, Math.floor(Math.log10(max)));
  max = Math.ceil(max / nice) * nice;
  // The SVG's viewBox, with room on the left and below for the axis labels.
  const W = 600;
  const H = 160;
  const L = 44;
  const B = 18;
  const x = (t: number) => L + (W - L) * (1 - (now - t) / WINDOW_MS);
  const y = (v: number) => (H - B) * (1 - v / max) + 4;
  const line = (k: 'recv' | 'proc') => pts.map((p) => `${x(p.t).toFixed(1)},${y(p[k]).toFixed(1)}`).join(' ');
  $('l-recv', SVGPolylineElement).setAttribute('points', line('recv'));
  $('l-proc', SVGPolylineElement).setAttribute('points', line('proc'));
  $('ymax', SVGTextElement).textContent = `${fmt(max)}/s`;
  $('ymid', SVGTextElement).textContent = `${fmt(max / 2)}/s`;
  const last = pts.at(-1);
  $('rate-recv').textContent = last ? `${fmt(Math.round(last.recv))}/s` : '–';
  $('rate-proc').textContent = last ? `${fmt(Math.round(last.proc))}/s` : '–';
}

async function latestEvents(t: string): Promise<StoredEvent[]> {
  // /events pages forward from a seq; the newest events of a topic are found by looking
  // back from the newest seq, further each time, until enough of the topic turn up.
  const top = stats ? stats.unique_processed : 0;
  const query = `/events?limit=1000&topic=${encodeURIComponent(t)}&after=`;
  let span = LATEST * 4;
  for (;;) {
    const after = Math.max(0, top - span);
    const page = await api<EventsPage>(query + after);
    let got = page.events;
    let cursor = page.next_after;
    while (cursor !== null) {
      const more = await api<EventsPage>(query + cursor);
      got = got.concat(more.events).slice(-LATEST);
      cursor = more.next_after;
    }
    if (got.length >= LATEST || after === 0) return got.slice(-LATEST).reverse();
    span *= 8;
  }
}

function renderEvents(): void {
  $('eventstitle').textContent = topic === null ? 'Latest events' : `Latest events in ${topic}`;
  const body = $('eventrows');
  body.replaceChildren();
  for (const e of events) {
    const tr = el('tr', null, 'pick');
    tr.dataset.seq = String(e.seq);
    tr.appendChild(el('td', e.seq, 'num'));
    tr.appendChild(el('td', e.event_id));
    tr.appendChild(el('td', e.timestamp));
    tr.appendChild(el('td', e.source));
    tr.appendChild(el('td', JSON.stringify(e.payload), 'muted'));
    tr.addEventListener('click', () => showEvent(e));
    body.appendChild(tr);
  }
}

function showEvent(e: StoredEvent): void {
  $('eventhead').textContent = `${e.topic} / ${e.event_id} (seq ${e.seq})`;
  $('eventmeta').textContent = `source ${e.source} · timestamp ${e.timestamp} · processed ${e.processed_at}`;
  $('payload').textContent = JSON.stringify(e.payload, null, 2);
  $('eventdialog', HTMLDialogElement).showModal();
}

async function refreshEvents(): Promise<void> {
  if (topic === null) return;
  const t = topic;
  const list = await latestEvents(t);
  // The operator may have picked another topic while this one loaded.
  if (t === topic) {
    events = list;
    renderEvents();
  }
}

function closeStream(): void {
  source?.close();
  source = null;
  $('eventsmode').textContent = `refreshed every ${(3 * POLL_MS) / 1000} s`;
}

/** Follows the topic's new events after the newest one shown; only with open reads. */
function openStream(t: string): void {
  closeStream();
  if (sessionStorage.getItem(KEY) || keyNeeded || document.hidden || t !== topic) return;
  // After the newest event shown, so that none stored since the list was read is missed.
  const newest = events[0];
  const s = new EventSource(`/events/stream?topic=${encodeURIComponent(t)}${newest ? `&after=${newest.seq}` : ''}`);
  source = s;
  $('eventsmode').textContent = 'live';
  s.onmessage = (m: MessageEvent<string>) => {
    const e = JSON.parse(m.data) as StoredEvent;
    if (t !== topic || e.seq <= (events[0]?.seq ?? 0)) return;
    events = [e, ...events].slice(0, LATEST);
    renderEvents();
  };
  s.onerror = () => {
    // A dropped connection is retried by the EventSource itself (with Last-Event-ID); a
    // refusal (a key now needed, no room on the server) closes it: back to polling.
    if (s.readyState === EventSource.CLOSED && source === s) closeStream();
  };
}

function chooseTopic(t: string): void {
  topic = t;
  events = [];
  closeStream();
  renderEvents();
  document.querySelectorAll<HTMLTableRowElement>('#topicrows tr').forEach((tr) => tr.classList.toggle('sel', tr.dataset.topic === t));
  refreshEvents()
    .then(() => openStream(t))
    .catch(handle);
}

function handle(err: unknown): void {
  if (err instanceof Unauthorized) {
    // A key already kept and still refused is a wrong one; none kept, reads just need one.
    askKey(Boolean(sessionStorage.getItem(KEY)));
    return;
  }
  $('updated').textContent = `error: ${err instanceof Error && err.message ? err.message : String(err)}`;
}

async function refreshReady(): Promise<void> {
  try {
    const r = await api<Ready>('/ready');
    const c = r.checks ?? {};
    setPill('h-redis', c.redis === 'ok' ? 'ok' : 'bad', `redis: ${c.redis === 'ok' ? 'ok' : 'down'}`);
    setPill('h-store', c.store === 'ok' ? 'ok' : 'bad', `store: ${c.store === 'ok' ? 'ok' : 'failing'}`);
    $('h-redis').title = c.redis ?? '';
    $('h-store').title = c.store ?? '';
  } catch (err) {
    setPill('h-redis', 'bad', 'redis: ?');
    setPill('h-store', 'bad', 'store: ?');
    setPill('h-api', 'bad', 'api: unreachable');
    throw err;
  }
}

async function refresh(): Promise<void> {
  if (keyNeeded) return;
  const s = await api<Stats>('/stats');
  stats = s;
  setPill('h-api', 'ok', 'api: ok');
  const now = Date.now();
  samples.push({ t: now, received: s.received, processed: s.unique_processed + s.duplicate_dropped });
  const oldest = now - WINDOW_MS - POLL_MS;
  while (samples.length > 2 && (samples[0]?.t ?? now) < oldest) samples.shift();
  renderCounts(s);
  renderQueue(s);
  renderWorkers(s);
  renderTopics(s);
  renderChart();
  $('updated').textContent = `updated ${new Date(now).toLocaleTimeString()}`;
  if (tick % 3 === 0 && source === null) await refreshEvents();
}

async function loop(): Promise<void> {
  // A hidden tab does not poll: nobody looks, and the API is spared.
  if (!document.hidden) {
    await Promise.all([refresh(), tick % 2 === 0 ? refreshReady() : null]).catch(handle);
    tick++;
  }
  setTimeout(() => void loop(), POLL_MS);
}

$('keyform').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('keyinput', HTMLInputElement);
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = '';
  $('forget').hidden = false;
  $('keybox').classList.remove('open');
  keyNeeded = false;
  tick = 0;
  refresh().catch(handle);
});
$('forget').hidden = !sessionStorage.getItem(KEY);
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  location.reload();
});
$('closedialog').addEventListener('click', () => $('eventdialog', HTMLDialogElement).close());
// A hidden tab holds no stream (the server keeps a slot per subscriber); shown again, the
// list is reloaded and followed from there.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) closeStream();
  else if (topic !== null) chooseTopic(topic);
});
void loop();
