// Drawing what the API said: counts, queue, workers, topics, the chart and the events.
// Data goes into the page with textContent only: topics, ids and payloads are whatever
// producers sent.

function renderCounts(s: Stats): void {
  $('received').textContent = fmt(s.received);
  $('stored').textContent = fmt(s.unique_processed);
  $('duplicates').textContent = fmt(s.duplicate_dropped);
  $('pending').textContent = fmt(s.pending);
  $('failed').textContent = fmt(s.queue?.failed);
  $('conflicts').textContent = fmt(s.conflicts);
  $('redeliveries').textContent = `${fmt(s.redeliveries)} redelivered jobs`;
  $('topiccount').textContent = `${fmt(s.topics_count)} topic${s.topics_count === 1 ? '' : 's'}`;
  const processed = s.unique_processed + s.duplicate_dropped;
  $('dupshare').textContent = processed > 0 ? `${((100 * s.duplicate_dropped) / processed).toFixed(1)}% of processed` : 'none yet';
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
    tr.appendChild(el('td', w.role === undefined ? w.status : `${w.status}, ${w.role}`, w.status === 'ok' ? '' : 'bad-text'));
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
    tr.appendChild(el('td', fmt(s.duplicates_per_topic?.[name]), 'num'));
    const conflicts = s.conflicts_per_topic?.[name];
    tr.appendChild(el('td', fmt(conflicts), conflicts ? 'num warn-text' : 'num'));
    const td = el('td');
    const bar = el('div', null, 'bar');
    bar.style.width = `${Math.max(2, (100 * count) / max)}%`;
    td.appendChild(bar);
    td.style.width = '22%';
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
    td.colSpan = 5;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  if (entries.length === 0) {
    const tr = el('tr');
    const td = el('td', 'no events stored yet', 'muted');
    td.colSpan = 5;
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
    tr.addEventListener('click', () => openEvent(e));
    body.appendChild(tr);
  }
}

function showEvent(e: StoredEvent): void {
  $('eventhead').textContent = `${e.topic} / ${e.event_id} (seq ${e.seq})`;
  $('eventmeta').textContent = `source ${e.source} · timestamp ${e.timestamp} · processed ${e.processed_at}`;
  $('payload').textContent = JSON.stringify(e.payload, null, 2);
  for (const id of ['ev-copies', 'ev-conflicts', 'ev-first', 'ev-last']) $(id).textContent = '…';
  $('eventdialog', HTMLDialogElement).showModal();
}

/** What became of the copies of the event the dialog shows (GET /events/{topic}/{event_id}). */
function renderLookup(l: Lookup): void {
  $('ev-copies').textContent = fmt(l.copies);
  $('ev-conflicts').textContent = fmt(l.conflicts);
  $('ev-conflicts').className = l.conflicts > 0 ? 'warn-text' : '';
  $('ev-first').textContent = l.first_seen_at;
  $('ev-last').textContent = l.last_seen_at;
}
