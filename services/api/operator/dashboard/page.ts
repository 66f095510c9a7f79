// GET /: the dashboard. Its markup, style and script are files in this folder (index.html,
// dashboard.css, and the scripts named in SCRIPTS, compiled by this folder's own
// tsconfig.json); npm run build puts them next to this module's page.js in dist/. They are read once, when
// the app is built, and the style and script go inline. That way there are no asset routes,
// and the Content-Security-Policy can allow those two texts by hash and nothing else.
import fs from 'node:fs';
import path from 'node:path';
import { cspHash } from '../docs.js';

export type Page = { html: string; csp: string };

// index.html links the files so that it is a complete page on its own; these exact tags
// are what gets replaced.
const STYLE_TAG = '<link rel="stylesheet" href="dashboard.css">';
const SCRIPT_TAG = '<script type="module" src="dashboard.js"></script>';

/** The compiled scripts, in the order tsconfig.json's "files" gives: one scope, one module. */
const SCRIPTS = ['types.js', 'dom.js', 'render.js', 'dashboard.js'];

/**
 * The folder with the built files: this module's own in dist/. Run from the sources (tsx,
 * as the tests do when they build the app in-process), there is no dashboard.js here, so
 * the build's copy in dist/ is used instead.
 */
function builtDir(): string {
  const here = import.meta.dirname;
  if (fs.existsSync(path.join(here, 'dashboard.js'))) return here;
  const root = path.resolve(here, '../../../..');
  const built = path.join(root, 'dist', path.relative(root, here));
  if (fs.existsSync(path.join(built, 'dashboard.js'))) return built;
  throw new Error(`the dashboard is not built (no dashboard.js in ${here} or ${built}): run npm run build`);
}

/** Puts `text` in place of `tag`; index.html must hold the tag exactly once. */
function replaceOnce(html: string, tag: string, text: string): string {
  const at = html.indexOf(tag);
  if (at < 0 || html.includes(tag, at + tag.length)) throw new Error(`index.html must hold ${tag} exactly once`);
  // Sliced, not String.replace: that would read `$&` and the like in the script as patterns.
  return html.slice(0, at) + text + html.slice(at + tag.length);
}

export function loadDashboard(): Page {
  const dir = builtDir();
  const read = (name: string) => fs.readFileSync(path.join(dir, name), 'utf8');
  const style = read('dashboard.css');
  const script = SCRIPTS.map(read).join('\n');
  // Inline, a closing tag inside the text would end the element early.
  if (/<\/style/i.test(style)) throw new Error('dashboard.css must not contain </style');
  if (/<\/script/i.test(script)) throw new Error('dashboard.js must not contain </script');
  const html = replaceOnce(
    replaceOnce(read('index.html'), STYLE_TAG, `<style>${style}</style>`),
    SCRIPT_TAG,
    `<script type="module">${script}</script>`,
  );
  return {
    html,
    // Only this page's own style and script may run, and it may talk only to its origin.
    csp: [
      "default-src 'none'",
      `script-src ${cspHash(script)}`,
      `style-src ${cspHash(style)}`,
      "connect-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
  };
}

/** Where the server's recent totals go: a JSON data block, which no Content-Security-Policy runs. */
const RATES_TAG = '<script type="application/json" id="rates-seed">{"now":0,"samples":[]}</script>';

/**
 * The page with the recent per-second totals in it (rates.ts), so that its chart is drawn
 * from the first paint. `<` is escaped so that no text can close the block early.
 */
export function withRates(page: Page, samples: readonly { t: number; received: number; processed: number }[], now = Date.now()): Page {
  // The server's clock comes along: the page shifts the samples onto its own.
  const json = JSON.stringify({ now, samples }).replace(/</g, '\\u003c');
  return { ...page, html: replaceOnce(page.html, RATES_TAG, `<script type="application/json" id="rates-seed">${json}</script>`) };
}
