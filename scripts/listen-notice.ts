// What `npm start` says about where the API listens: the address it really binds, and a
// warning when that is every interface with nothing guarding publishes or reads.

type Where = { host: string; port: number; apiKey: string | undefined; readApiKey: string | undefined };

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

/** The lines to print once the API is started, first the address. */
export function listenNotice({ host, port, apiKey, readApiKey }: Where): string[] {
  if (!WILDCARDS.has(host)) {
    const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return [`API listening on http://${shown}:${port} (Ctrl-C stops everything)`];
  }
  const lines = [`API listening on every interface (HOST=${host}), port ${port}: open http://127.0.0.1:${port} on this machine (Ctrl-C stops everything)`];
  const open = [apiKey === undefined ? 'publishes (API_KEY unset)' : undefined, readApiKey === undefined ? 'reads (READ_API_KEY unset)' : undefined].filter(
    (s): s is string => s !== undefined,
  );
  if (open.length > 0) {
    lines.push(`warning: anyone who can reach this machine on port ${port} can make ${open.join(' and ')}; set HOST=127.0.0.1 to keep it local, or set the keys`);
  }
  return lines;
}
