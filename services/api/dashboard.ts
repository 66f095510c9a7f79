// GET /: the dashboard, one self-contained page (inline style and script, an SVG chart, no
// external assets: no build step, nothing to fetch but the API's own JSON). It lives in a
// TS module because tsc copies no .html into dist. The page polls /stats, /ready and
// /events; when reads need the key (API_KEY_READS), it asks for it once and keeps it in
// sessionStorage, so it dies with the tab.
//
// The script writes data into the page with textContent only: topics, ids and payloads are
// whatever producers sent.
import { cspHash } from './operator/docs.js';

const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f8fa;--card:#fff;--muted:#59636e;--line:#d1d9e0;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--a:#0969da;--b:#8250df;--code:#f3f5f7}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--card:#151b23;--muted:#9198a1;--line:#30363d;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--a:#4493f8;--b:#ab7df8;--code:#0d1117}}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.6rem 1.2rem;padding:.8rem 1.5rem;background:var(--card);border-bottom:1px solid var(--line)}
header h1{font-size:1.15rem;margin:0 auto 0 0}header a{color:var(--a);text-decoration:none}
.pill{display:inline-flex;align-items:center;gap:.35rem;padding:.15rem .6rem;border:1px solid var(--line);border-radius:99px;font-size:.85rem}
.dot{width:.6rem;height:.6rem;border-radius:50%;background:var(--muted)}.ok .dot{background:var(--ok)}.bad .dot{background:var(--bad)}.warn .dot{background:var(--warn)}
main{display:grid;grid-template-columns:repeat(12,1fr);gap:1rem;padding:1rem 1.5rem;max-width:96rem;margin:0 auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;min-width:0}
.card h2{font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);margin:0 0 .5rem;font-weight:600}
.counts{grid-column:span 12;display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:1rem}
.count .n{font-size:1.9rem;font-weight:600;font-variant-numeric:tabular-nums}.count .sub{color:var(--muted);font-size:.8rem}
.chart{grid-column:span 8}.queue{grid-column:span 4}.topics{grid-column:span 5}.events{grid-column:span 7}.workers{grid-column:span 12}
@media (max-width:900px){.chart,.queue,.topics,.events{grid-column:span 12}}
svg{width:100%;height:12rem;display:block}.grid line{stroke:var(--line)}svg text{fill:var(--muted);font-size:11px}
.l-recv{stroke:var(--a)}.l-proc{stroke:var(--b)}polyline{fill:none;stroke-width:2;stroke-linejoin:round}
.legend{display:flex;gap:1rem;font-size:.85rem}.legend i{display:inline-block;width:.8rem;height:.2rem;vertical-align:middle;margin-right:.3rem}.sw-a{background:var(--a)}.sw-b{background:var(--b)}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{text-align:left;padding:.3rem .4rem;border-top:1px solid var(--line);white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:18rem}
th{color:var(--muted);font-weight:600;border-top:0}td.num,th.num{text-align:right}
tbody tr.pick{cursor:pointer}tbody tr.pick:hover{background:var(--bg)}tr.sel{outline:2px solid var(--a);outline-offset:-2px}
.bar{height:.35rem;background:var(--a);border-radius:2px;opacity:.6}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:0}dt{color:var(--muted)}dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}.bad-text{color:var(--bad)}.scroll{max-height:22rem;overflow:auto}
dialog{border:1px solid var(--line);border-radius:8px;background:var(--card);color:var(--fg);width:min(48rem,92vw);padding:1rem}
dialog::backdrop{background:rgba(0,0,0,.4)}pre{background:var(--code);padding:.7rem;border-radius:6px;overflow:auto;max-height:60vh;font:12.5px/1.45 ui-monospace,Menlo,Consolas,monospace}
button,input{font:inherit}button{border:1px solid var(--line);background:var(--card);color:var(--fg);border-radius:6px;padding:.25rem .7rem;cursor:pointer}
input{border:1px solid var(--line);border-radius:6px;padding:.3rem .5rem;background:var(--bg);color:var(--fg)}
#keybox{position:fixed;inset:0;display:none;align-items:center;justify-content:center;background:rgba(0,0,0,.45)}
#keybox.open{display:flex}#keybox form{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1.2rem;display:grid;gap:.6rem;width:min(26rem,90vw)}
`;

const SCRIPT = `
"use strict";
var KEY = "aggregator-api-key";
var WINDOW_MS = 5 * 60 * 1000;
var POLL_MS = 2000;
var LATEST = 25;
var samples = [];
var stats = null;
var topic = null;
var events = [];
var keyNeeded = false;
var tick = 0;
var $ = function (id) { return document.getElementById(id); };
var fmt = function (n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); };

function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function Unauthorized() {}

async function api(path) {
  var headers = { accept: "application/json" };
  var key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = "Bearer " + key;
  var res = await fetch(path, { headers: headers, cache: "no-store" });
  if (res.status === 401) throw new Unauthorized();
  var body = await res.json();
  if (!res.ok && path !== "/ready") throw new Error(body.message || ("HTTP " + res.status));
  return body;
}

function askKey(wrong) {
  keyNeeded = true;
  $("keymsg").textContent = wrong ? "That key was refused. Enter the API key:" : "Reads need the API key (API_KEY_READS). Enter it:";
  $("keybox").classList.add("open");
  $("keyinput").focus();
}

function setPill(id, state, text) {
  var p = $(id);
  p.className = "pill " + state;
  p.querySelector("span:last-child").textContent = text;
}

function renderCounts(s) {
  $("received").textContent = fmt(s.received);
  $("stored").textContent = fmt(s.unique_processed);
  $("duplicates").textContent = fmt(s.duplicate_dropped);
  $("pending").textContent = fmt(s.pending);
  $("failed").textContent = fmt(s.queue ? s.queue.failed : null);
  $("topiccount").textContent = fmt(s.topics.length) + " topics";
  var share = s.received > 0 ? (100 * s.duplicate_dropped / Math.max(1, s.unique_processed + s.duplicate_dropped)).toFixed(1) + "% of processed" : "";
  $("dupshare").textContent = share;
}

function renderQueue(s) {
  var q = s.queue || {};
  var rows = [["waiting jobs", q.waiting], ["active jobs", q.active], ["delayed jobs", q.delayed], ["failed jobs", q.failed],
    ["pending events", s.pending], ["committed jobs", s.store ? s.store.committed_jobs : null],
    ["store size", s.store ? (s.store.bytes / 1048576).toFixed(1) + " MiB" : null], ["API uptime", s.uptime_seconds + " s"]];
  var dl = $("queuelist");
  dl.replaceChildren();
  rows.forEach(function (r) {
    dl.appendChild(el("dt", r[0]));
    var dd = el("dd", typeof r[1] === "string" ? r[1] : fmt(r[1]));
    if (r[0] === "failed jobs" && r[1] > 0) dd.className = "bad-text";
    dl.appendChild(dd);
  });
}

function renderWorkers(s) {
  var body = $("workerrows");
  body.replaceChildren();
  var list = s.workers ? s.workers.list : [];
  list.forEach(function (w) {
    var tr = el("tr");
    tr.appendChild(el("td", w.id));
    tr.appendChild(el("td", w.status, w.status === "ok" ? "" : "bad-text"));
    tr.appendChild(el("td", fmt(w.committed_events), "num"));
    tr.appendChild(el("td", w.error || ""));
    body.appendChild(tr);
  });
  if (list.length === 0) {
    var tr = el("tr");
    var td = el("td", s.workers ? "no live worker: events wait in the queue" : "unknown (Redis unreachable)", "bad-text");
    td.colSpan = 4;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  var live = s.workers ? s.workers.live : null;
  var failing = list.filter(function (w) { return w.status !== "ok"; }).length;
  setPill("h-workers", live ? (failing ? "warn" : "ok") : "bad", "workers: " + (live === null ? "?" : live) + (failing ? " (" + failing + " failing)" : ""));
}

function renderTopics(s) {
  var body = $("topicrows");
  body.replaceChildren();
  var entries = Object.entries(s.per_topic || {}).sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); });
  var max = entries.length ? entries[0][1] : 1;
  entries.forEach(function (e) {
    var tr = el("tr", null, "pick" + (e[0] === topic ? " sel" : ""));
    tr.dataset.topic = e[0];
    tr.appendChild(el("td", e[0]));
    tr.appendChild(el("td", fmt(e[1]), "num"));
    var td = el("td");
    var bar = el("div", null, "bar");
    bar.style.width = Math.max(2, 100 * e[1] / max) + "%";
    td.appendChild(bar);
    td.style.width = "30%";
    tr.appendChild(td);
    tr.addEventListener("click", function () { chooseTopic(e[0]); });
    body.appendChild(tr);
  });
  if (entries.length === 0) {
    var tr = el("tr");
    var td = el("td", "no events stored yet", "muted");
    td.colSpan = 3;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  if (topic === null && entries.length) chooseTopic(entries[0][0]);
}

function renderChart() {
  var now = Date.now();
  var pts = [];
  for (var i = 1; i < samples.length; i++) {
    var a = samples[i - 1], b = samples[i];
    var dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    pts.push({ t: b.t, recv: Math.max(0, (b.received - a.received) / dt), proc: Math.max(0, (b.processed - a.processed) / dt) });
  }
  var max = 1;
  pts.forEach(function (p) { max = Math.max(max, p.recv, p.proc); });
  var nice = Math.pow(10, Math.floor(Math.log10(max)));
  max = Math.ceil(max / nice) * nice;
  var W = 600, H = 160, L = 44, B = 18;
  var x = function (t) { return L + (W - L) * (1 - (now - t) / WINDOW_MS); };
  var y = function (v) { return (H - B) * (1 - v / max) + 4; };
  var line = function (k) { return pts.map(function (p) { return x(p.t).toFixed(1) + "," + y(p[k]).toFixed(1); }).join(" "); };
  $("l-recv").setAttribute("points", line("recv"));
  $("l-proc").setAttribute("points", line("proc"));
  $("ymax").textContent = fmt(max) + "/s";
  $("ymid").textContent = fmt(max / 2) + "/s";
  var last = pts[pts.length - 1];
  $("rate-recv").textContent = last ? fmt(Math.round(last.recv)) + "/s" : "–";
  $("rate-proc").textContent = last ? fmt(Math.round(last.proc)) + "/s" : "–";
}

async function latestEvents(t) {
  // /events pages forward from a seq; the newest events of a topic are found by looking
  // back from the newest seq, further each time, until enough of the topic turn up.
  var top = stats ? stats.unique_processed : 0;
  var span = LATEST * 4;
  for (;;) {
    var after = Math.max(0, top - span);
    var page = await api("/events?limit=1000&topic=" + encodeURIComponent(t) + "&after=" + after);
    var got = page.events;
    var cursor = page.next_after;
    while (cursor !== null) {
      var more = await api("/events?limit=1000&topic=" + encodeURIComponent(t) + "&after=" + cursor);
      got = got.concat(more.events).slice(-LATEST);
      cursor = more.next_after;
    }
    if (got.length >= LATEST || after === 0) return got.slice(-LATEST).reverse();
    span *= 8;
  }
}

function renderEvents() {
  $("eventstitle").textContent = topic === null ? "Latest events" : "Latest events in " + topic;
  var body = $("eventrows");
  body.replaceChildren();
  events.forEach(function (e) {
    var tr = el("tr", null, "pick");
    tr.dataset.seq = String(e.seq);
    tr.appendChild(el("td", e.seq, "num"));
    tr.appendChild(el("td", e.event_id));
    tr.appendChild(el("td", e.timestamp));
    tr.appendChild(el("td", e.source));
    tr.appendChild(el("td", JSON.stringify(e.payload), "muted"));
    tr.addEventListener("click", function () { showEvent(e); });
    body.appendChild(tr);
  });
}

function showEvent(e) {
  $("eventhead").textContent = e.topic + " / " + e.event_id + " (seq " + e.seq + ")";
  $("eventmeta").textContent = "source " + e.source + " · timestamp " + e.timestamp + " · processed " + e.processed_at;
  $("payload").textContent = JSON.stringify(e.payload, null, 2);
  $("eventdialog").showModal();
}

async function refreshEvents() {
  if (topic === null) return;
  var t = topic;
  var list = await latestEvents(t);
  if (t === topic) { events = list; renderEvents(); }
}

function chooseTopic(t) {
  topic = t;
  events = [];
  renderEvents();
  document.querySelectorAll("#topicrows tr").forEach(function (tr) { tr.classList.toggle("sel", tr.dataset.topic === t); });
  refreshEvents().catch(handle);
}

function handle(err) {
  if (err instanceof Unauthorized) { askKey(Boolean(sessionStorage.getItem(KEY))); return; }
  $("updated").textContent = "error: " + (err && err.message ? err.message : String(err));
}

async function refreshReady() {
  try {
    var r = await api("/ready");
    var c = r.checks || {};
    setPill("h-redis", c.redis === "ok" ? "ok" : "bad", "redis: " + (c.redis === "ok" ? "ok" : "down"));
    setPill("h-store", c.store === "ok" ? "ok" : "bad", "store: " + (c.store === "ok" ? "ok" : "failing"));
    $("h-redis").title = c.redis || "";
    $("h-store").title = c.store || "";
  } catch (err) {
    setPill("h-redis", "bad", "redis: ?");
    setPill("h-store", "bad", "store: ?");
    setPill("h-api", "bad", "api: unreachable");
    throw err;
  }
}

async function refresh() {
  if (keyNeeded) return;
  var s = await api("/stats");
  stats = s;
  setPill("h-api", "ok", "api: ok");
  var now = Date.now();
  samples.push({ t: now, received: s.received, processed: s.unique_processed + s.duplicate_dropped });
  while (samples.length > 2 && samples[0].t < now - WINDOW_MS - POLL_MS) samples.shift();
  renderCounts(s);
  renderQueue(s);
  renderWorkers(s);
  renderTopics(s);
  renderChart();
  $("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
  if (tick % 3 === 0) await refreshEvents();
}

async function loop() {
  if (!document.hidden) {
    await Promise.all([refresh(), tick % 2 === 0 ? refreshReady() : null]).catch(handle);
    tick++;
  }
  setTimeout(loop, POLL_MS);
}

$("keyform").addEventListener("submit", function (ev) {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("keyinput").value.trim());
  $("keyinput").value = "";
  $("forget").hidden = false;
  $("keybox").classList.remove("open");
  keyNeeded = false;
  tick = 0;
  refresh().catch(handle);
});
$("forget").hidden = !sessionStorage.getItem(KEY);
$("forget").addEventListener("click", function () { sessionStorage.removeItem(KEY); location.reload(); });
$("closedialog").addEventListener("click", function () { $("eventdialog").close(); });
loop();
`;

const BODY = `
<header><h1>Event aggregator</h1>
<span class="pill" id="h-api"><span class="dot"></span><span>api: …</span></span>
<span class="pill" id="h-redis"><span class="dot"></span><span>redis: …</span></span>
<span class="pill" id="h-store"><span class="dot"></span><span>store: …</span></span>
<span class="pill" id="h-workers"><span class="dot"></span><span>workers: …</span></span>
<span class="muted" id="updated"></span><a href="/docs">API docs</a><a href="/metrics">metrics</a><button id="forget" type="button" title="Forget the API key this tab keeps">forget key</button></header>
<main>
<section class="counts">
<div class="card count"><h2>Received</h2><div class="n" id="received">–</div><div class="sub">taken into the queue, ever</div></div>
<div class="card count"><h2>Stored</h2><div class="n" id="stored">–</div><div class="sub" id="topiccount"></div></div>
<div class="card count"><h2>Duplicates</h2><div class="n" id="duplicates">–</div><div class="sub" id="dupshare"></div></div>
<div class="card count"><h2>Pending</h2><div class="n" id="pending">–</div><div class="sub">accepted, not yet stored</div></div>
<div class="card count"><h2>Failed jobs</h2><div class="n" id="failed">–</div><div class="sub">parked, see replay-failed</div></div>
</section>
<section class="card chart"><h2>Throughput, last 5 minutes</h2>
<div class="legend"><span><i class="sw-a"></i>received <b id="rate-recv">–</b></span><span><i class="sw-b"></i>processed <b id="rate-proc">–</b></span></div>
<svg viewBox="0 0 600 164" preserveAspectRatio="none" role="img" aria-label="events per second">
<g class="grid"><line x1="44" y1="4" x2="600" y2="4"/><line x1="44" y1="75" x2="600" y2="75"/><line x1="44" y1="146" x2="600" y2="146"/></g>
<text x="0" y="12" id="ymax"></text><text x="0" y="79" id="ymid"></text><text x="0" y="150">0</text>
<text x="44" y="162">−5 min</text><text x="570" y="162">now</text>
<polyline id="l-recv" class="l-recv" points=""/><polyline id="l-proc" class="l-proc" points=""/></svg>
<div class="muted">Drawn from what this page has seen since it opened; Prometheus keeps the long history (/metrics).</div></section>
<section class="card queue"><h2>Queue and store</h2><dl id="queuelist"></dl></section>
<section class="card topics"><h2>Topics</h2><div class="scroll"><table><thead><tr><th>topic</th><th class="num">stored</th><th></th></tr></thead><tbody id="topicrows"></tbody></table></div></section>
<section class="card events"><h2 id="eventstitle">Latest events</h2><div class="scroll"><table><thead><tr><th class="num">seq</th><th>event_id</th><th>timestamp</th><th>source</th><th>payload</th></tr></thead><tbody id="eventrows"></tbody></table></div></section>
<section class="card workers"><h2>Workers</h2><table><thead><tr><th>id</th><th>status</th><th class="num">committed events</th><th>error</th></tr></thead><tbody id="workerrows"></tbody></table></section>
</main>
<dialog id="eventdialog"><h3 id="eventhead"></h3><div class="muted" id="eventmeta"></div><pre id="payload"></pre><button id="closedialog" type="button">Close</button></dialog>
<div id="keybox"><form id="keyform"><label for="keyinput" id="keymsg">API key</label><input id="keyinput" type="password" autocomplete="off" required><button type="submit">Use this key</button><span class="muted">Kept in this tab only (sessionStorage).</span></form></div>
`;

export type Page = { html: string; csp: string };

export function renderDashboard(): Page {
  return {
    html: `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Event aggregator</title><style>${STYLE}</style></head><body>${BODY}<script>${SCRIPT}</script></body></html>`,
    // Only this page's own style and script may run, and it may talk only to its origin.
    csp: [
      "default-src 'none'",
      `script-src ${cspHash(SCRIPT)}`,
      `style-src ${cspHash(STYLE)}`,
      "connect-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
  };
}
