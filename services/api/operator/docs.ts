// GET /docs: the OpenAPI document as a page to read. Rendered here, from the document
// itself, into one self-contained HTML page: no script, no CDN (the page must work on a
// closed network), nothing that can say something the document does not.
import { createHash } from 'node:crypto';

type Json = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'] as const;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Prose from the document: paragraphs, with `code` spans; everything else escaped. */
function prose(text: unknown): string {
  if (typeof text !== 'string' || text === '') return '';
  return text
    .split(/\n{2,}/)
    .map((p) => `<p>${escapeHtml(p).replace(/`([^`]+)`/g, '<code>$1</code>')}</p>`)
    .join('');
}

/** A scalar from the document as text; anything else is nothing to print. */
const str = (x: unknown): string => (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' ? String(x) : '');

const anchor = (s: string) => s.replace(/[^A-Za-z0-9_-]+/g, '-');

/** Pretty JSON whose $refs link to the schema they name. */
function jsonBlock(value: unknown): string {
  const html = escapeHtml(JSON.stringify(value, null, 2)).replace(
    /(&#34;\$ref&#34;: &#34;)#\/components\/schemas\/([A-Za-z0-9_-]+)(&#34;)/g,
    (_m, a: string, name: string, b: string) => `${a}<a href="#schema-${anchor(name)}">#/components/schemas/${name}</a>${b}`,
  );
  return `<pre>${html}</pre>`;
}

function schemaSummary(schema: unknown): string {
  const s = (schema ?? {}) as Json;
  if (typeof s.$ref === 'string') {
    const name = s.$ref.split('/').pop() ?? s.$ref;
    return `<a href="#schema-${anchor(name)}">${escapeHtml(name)}</a>`;
  }
  const type = Array.isArray(s.type) ? (s.type as string[]).join(' | ') : typeof s.type === 'string' ? s.type : 'any';
  const bounds = [
    s.minimum !== undefined ? `≥ ${str(s.minimum)}` : '',
    s.maximum !== undefined ? `≤ ${str(s.maximum)}` : '',
    s.minLength !== undefined ? `length ≥ ${str(s.minLength)}` : '',
    s.default !== undefined ? `default ${JSON.stringify(s.default)}` : '',
  ].filter(Boolean);
  return escapeHtml(bounds.length ? `${type} (${bounds.join(', ')})` : type);
}

function content(media: unknown): string {
  const out: string[] = [];
  for (const [type, body] of Object.entries((media ?? {}) as Record<string, Json>)) {
    out.push(`<div class="media"><span class="ct">${escapeHtml(type)}</span> ${schemaSummary(body.schema)}`);
    const s = body.schema as Json | undefined;
    if (s !== undefined && s.$ref === undefined && typeof s.description === 'string') out.push(prose(s.description));
    if (body.example !== undefined) out.push(`<details><summary>Example</summary>${exampleBlock(body.example)}</details>`);
    for (const [name, ex] of Object.entries((body.examples ?? {}) as Record<string, Json>)) {
      out.push(`<details><summary>Example: ${escapeHtml(str(ex.summary) || name)}</summary>${exampleBlock(ex.value)}</details>`);
    }
    out.push('</div>');
  }
  return out.join('');
}

const exampleBlock = (value: unknown) =>
  typeof value === 'string' ? `<pre>${escapeHtml(value)}</pre>` : jsonBlock(value);

function operation(path: string, method: string, op: Json): string {
  const id = anchor(`${method}-${path}`);
  const parts = [
    `<section class="op" id="${id}"><h3><span class="method ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code> <span class="summary">${escapeHtml(str(op.summary))}</span></h3>`,
    prose(op.description),
  ];
  const params = (op.parameters ?? []) as Json[];
  if (params.length > 0) {
    parts.push('<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>schema</th><th>meaning</th></tr>');
    for (const p of params) {
      parts.push(
        `<tr><td><code>${escapeHtml(str(p.name))}</code>${p.required ? ' (required)' : ''}</td><td>${escapeHtml(str(p.in))}</td><td>${schemaSummary(p.schema)}</td><td>${escapeHtml(str(p.description))}</td></tr>`,
      );
    }
    parts.push('</table>');
  }
  const body = op.requestBody as Json | undefined;
  if (body !== undefined) parts.push(`<h4>Request body</h4>${content(body.content)}`);
  parts.push('<h4>Responses</h4><table class="responses"><tr><th>status</th><th>meaning</th></tr>');
  for (const [status, r] of Object.entries((op.responses ?? {}) as Record<string, Json>)) {
    const headers = Object.keys(r.headers ?? {});
    parts.push(
      `<tr><td class="status s${status.charAt(0)}">${escapeHtml(status)}</td><td>${prose(r.description)}${
        headers.length ? `<p>Headers: ${headers.map((h) => `<code>${escapeHtml(h)}</code>`).join(', ')}</p>` : ''
      }${content(r.content)}</td></tr>`,
    );
  }
  parts.push('</table></section>');
  return parts.join('');
}

const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#59636e;--line:#d1d9e0;--code:#f3f5f7;--link:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#30363d;--code:#161b22;--link:#4493f8}}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{padding:1.2rem 2rem;border-bottom:1px solid var(--line)}header h1{margin:0;font-size:1.4rem}
main{display:grid;grid-template-columns:16rem minmax(0,1fr);gap:2rem;padding:1rem 2rem;max-width:80rem}
nav{position:sticky;top:1rem;align-self:start;font-size:.9rem}nav ul{list-style:none;padding:0;margin:0 0 1rem}nav li{margin:.2rem 0}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);border-radius:4px}
code{padding:.1em .3em}pre{padding:.7rem;overflow:auto;max-height:28rem}
.op{border:1px solid var(--line);border-radius:8px;padding:.2rem 1rem 1rem;margin:0 0 1.2rem}
.op h3{font-size:1rem}.summary{color:var(--muted);font-weight:normal;margin-left:.4rem}
.method{display:inline-block;min-width:3.6rem;text-align:center;border-radius:4px;padding:.05rem .4rem;color:#fff;font-size:.8rem}
.get{background:#1f6feb}.post{background:#1a7f37}.put,.patch{background:#9a6700}.delete{background:#cf222e}
table{border-collapse:collapse;width:100%;margin:.3rem 0}th,td{border-top:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600}.status{font-weight:600;white-space:nowrap}.s2{color:#1a7f37}.s4{color:#9a6700}.s5{color:#cf222e}
td p{margin:.2rem 0}.media{margin:.3rem 0}.ct{color:var(--muted)}details{margin:.2rem 0}summary{cursor:pointer;color:var(--muted)}
h2{border-bottom:1px solid var(--line);padding-bottom:.3rem}
@media (max-width:800px){main{grid-template-columns:1fr}nav{position:static}}
`;

/** A hash for the Content-Security-Policy, so the page's one inline style is all it may use. */
export function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

type DocsPage = { html: string; csp: string };

export function renderDocs(doc: Json): DocsPage {
  const info = (doc.info ?? {}) as Json;
  const paths = (doc.paths ?? {}) as Record<string, Json>;
  const schemas = ((doc.components as Json | undefined)?.schemas ?? {}) as Record<string, Json>;
  const ops: { path: string; method: string; op: Json }[] = [];
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (op !== undefined) ops.push({ path, method, op });
    }
  }
  const tags = ((doc.tags ?? []) as Json[]).map((t) => str(t.name));
  const byTag = (tag: string) => ops.filter((o) => ((o.op.tags ?? []) as string[])[0] === tag);

  const nav = [
    ...tags.map(
      (tag) =>
        `<strong>${escapeHtml(tag)}</strong><ul>${byTag(tag)
          .map((o) => `<li><a href="#${anchor(`${o.method}-${o.path}`)}">${o.method.toUpperCase()} ${escapeHtml(o.path)}</a></li>`)
          .join('')}</ul>`,
    ),
    `<strong>schemas</strong><ul>${Object.keys(schemas)
      .map((n) => `<li><a href="#schema-${anchor(n)}">${escapeHtml(n)}</a></li>`)
      .join('')}</ul>`,
    '<p><a href="/openapi.json">openapi.json</a> · <a href="/">dashboard</a></p>',
  ].join('');

  const sections = tags.map(
    (tag) => `<h2>${escapeHtml(tag)}</h2>${byTag(tag).map((o) => operation(o.path, o.method, o.op)).join('')}`,
  );
  const untagged = ops.filter((o) => !tags.includes(((o.op.tags ?? []) as string[])[0] ?? ''));
  if (untagged.length > 0) sections.push(`<h2>other</h2>${untagged.map((o) => operation(o.path, o.method, o.op)).join('')}`);
  const schemaSections = Object.entries(schemas).map(
    ([name, s]) => `<section id="schema-${anchor(name)}"><h3>${escapeHtml(name)}</h3>${prose(s.description)}${jsonBlock(s)}</section>`,
  );

  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(str(info.title) || 'API')}: API documentation</title><style>${STYLE}</style></head>
<body><header><h1>${escapeHtml(str(info.title) || 'API')} <small>OpenAPI ${escapeHtml(str(doc.openapi))}, version ${escapeHtml(str(info.version))}</small></h1>${prose(info.description)}</header>
<main><nav>${nav}</nav><div>${sections.join('')}<h2>schemas</h2>${schemaSections.join('')}</div></main></body></html>`;
  return {
    html,
    csp: `default-src 'none'; style-src ${cspHash(STYLE)}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  };
}
