// The page's state and the small tools every part uses: elements by id, numbers for
// people, the API with the read key, the key prompt, the health pills.

const KEY = 'aggregator-api-key';
const WINDOW_MS = 5 * 60 * 1000;
const POLL_MS = 2000;
const LATEST = 25;
const samples: Sample[] = [];
let keyNeeded = false;

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
