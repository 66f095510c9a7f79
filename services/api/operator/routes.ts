// The operator's routes, registered by the app in one call: /metrics, /openapi.json, /docs
// and the dashboard at /. Pages are rendered once, here, when the app is built.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { renderDocs } from './docs.js';
import { createMetrics, type Metrics, type MetricsDeps } from './metrics.js';
import { buildOpenApi, type OpenApiOptions } from './openapi/document.js';
import { loadDashboard, withRates } from './dashboard/page.js';
import { RateRing, readTotals } from './rates.js';

type OperatorDeps = MetricsDeps & { openapi: OpenApiOptions };

type OperatorRoutes = {
  /** To put first on the publish routes, so that every answer is counted and timed. */
  observePublish: Middleware<{ acceptedTopics?: readonly string[] }>;
  /** The same count and time, for the lean path that answers publishes beside Koa. */
  recordPublish: Metrics['recordPublish'];
  /** Stops the dashboard's per-second sampling (its timer never holds the process). */
  close(): Promise<void>;
};

export function registerOperatorRoutes<S>(router: Router<S>, deps: OperatorDeps): OperatorRoutes {
  const metrics = createMetrics(deps);
  const doc = buildOpenApi(deps.openapi);
  const docsPage = renderDocs(doc);
  const dashboard = loadDashboard();
  // The last five minutes of totals, handed to each page load so its chart starts drawn.
  const rates = new RateRing(() => readTotals(deps));

  const html = (page: { html: string; csp: string }) => (ctx: Context) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.set('Content-Security-Policy', page.csp);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = page.html;
  };

  // Open like /health and /ready: counts only, no event data (READ_API_KEY guards that).
  router.get('/metrics', async (ctx: Context) => {
    const text = await metrics.render();
    ctx.type = metrics.contentType;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = text;
  });
  router.get('/openapi.json', (ctx: Context) => {
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = doc;
  });
  router.get('/docs', html(docsPage));
  router.get('/', (ctx: Context) => html(withRates(dashboard, rates.samples()))(ctx));

  return { observePublish: metrics.observePublish, recordPublish: metrics.recordPublish, close: () => rates.close() };
}
