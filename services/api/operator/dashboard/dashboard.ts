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

// What the page shows now; drawn by render.ts, changed only here.
let stats: Stats | null = null;
let topic: string | null = null;
let events: StoredEvent[] = [];
let tick = 0;
/** The live list's stream, while reads are open and the tab is visible. */
let source: EventSource | null = null;

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

/** The event's dialog, then what became of its copies, once the lookup answers. */
function openEvent(e: StoredEvent): void {
  showEvent(e);
  api<Lookup>(`/events/${encodeURIComponent(e.topic)}/${encodeURIComponent(e.event_id)}`)
    .then((l) => {
      // The operator may have opened another event meanwhile.
      if ($('eventhead').textContent === `${e.topic} / ${e.event_id} (seq ${e.seq})`) renderLookup(l);
    })
    .catch(handle);
}

/**
 * The API's last minutes of totals, one a second (rates.ts), came inside the page: put on
 * this page's clock (the server sent its own), they draw the chart before the first poll.
 */
function seedChart(): void {
  const seed = JSON.parse($('rates-seed').textContent ?? '{}') as { now?: number; samples?: Sample[] };
  const shift = seed.now ? Date.now() - seed.now : 0;
  for (const s of seed.samples ?? []) samples.push({ t: s.t + shift, received: s.received, processed: s.processed });
  renderChart();
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
seedChart();
void loop();
