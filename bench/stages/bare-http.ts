// Stage limit: a bare node:http server that reads and parses the same bodies the API gets,
// and does nothing else. The distance from here to the API is what Koa, validation and
// enqueueing cost.
import http from 'node:http';

function startBareServer(port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events?: unknown[] };
      const accepted = Array.isArray(body.events) ? body.events.length : 1;
      const reply = JSON.stringify({ status: 'accepted', accepted });
      res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply) });
      res.end(reply);
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (/bare-http\.[jt]s$/.test(process.argv[1] ?? '')) {
  const port = Number(process.argv[2]);
  void startBareServer(port).then(() => process.send?.({ type: 'listening' }));
}
