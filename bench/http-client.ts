// The load generator's HTTP/1.1 client: one keep-alive connection per lane, each request
// written as one prepared buffer, each response read for its status and skipped. node:http's
// client spends about as much CPU per request as the API spends serving it, on the same two
// cores; producers run elsewhere, so the load should take as little as it can (as wrk does).
import net from 'node:net';

export type Answer = { status: number; retryAfter: number | undefined };

/** A request ready to write: the head for `path` on `host` and the body, as one buffer. */
export function prepareRequest(host: string, path: string, contentType: string, body: string): Buffer {
  const bytes = Buffer.from(body, 'utf8');
  const head = Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: ${contentType}\r\nContent-Length: ${bytes.length}\r\n\r\n`, 'latin1');
  return Buffer.concat([head, bytes]);
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

type Reading = { need: 'head' } | { need: 'body'; left: number; answer: Answer } | { need: 'chunks'; answer: Answer };

/**
 * One connection, one request at a time. A connection the server closes is opened again for
 * the next request; a request it was carrying is rejected (the caller decides on a retry).
 */
export class Connection {
  private socket: net.Socket | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  private reading: Reading = { need: 'head' };
  private pending: { resolve: (a: Answer) => void; reject: (e: Error) => void } | undefined;
  private closeAfter = false;

  constructor(
    private readonly port: number,
    private readonly hostname: string,
  ) {}

  request(prepared: Buffer): Promise<Answer> {
    if (this.pending) return Promise.reject(new Error('a request is already under way on this connection'));
    const socket = this.socket ?? this.open();
    return new Promise<Answer>((resolve, reject) => {
      this.pending = { resolve, reject };
      socket.write(prepared);
    });
  }

  close(): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }

  private open(): net.Socket {
    const socket = net.connect(this.port, this.hostname);
    socket.setNoDelay(true);
    this.socket = socket;
    this.buffered = Buffer.alloc(0);
    this.reading = { need: 'head' };
    this.closeAfter = false;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // Only the current socket's end fails the request under way: one closed on purpose
    // (close()) has already been replaced.
    const gone = (err?: Error) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.fail(err ?? new Error('the server closed the connection'));
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
    return socket;
  }

  private fail(err: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const r = this.reading;
      if (r.need === 'head') {
        const end = this.buffered.indexOf(CRLFCRLF);
        if (end < 0) return;
        const head = this.buffered.toString('latin1', 0, end);
        this.buffered = this.buffered.subarray(end + 4);
        this.reading = this.parseHead(head);
      } else if (r.need === 'body') {
        const take = Math.min(r.left, this.buffered.length);
        this.buffered = this.buffered.subarray(take);
        r.left -= take;
        if (r.left > 0) return;
        this.done(r.answer);
      } else {
        // Chunked: a size line, the data and its CRLF; a size of 0 ends it (no trailers here).
        const line = this.buffered.indexOf('\r\n');
        if (line < 0) return;
        const size = parseInt(this.buffered.toString('latin1', 0, line), 16);
        if (!Number.isFinite(size)) return this.broken('a chunk size that is not a number');
        const whole = line + 2 + size + 2;
        if (this.buffered.length < whole) return;
        this.buffered = this.buffered.subarray(whole);
        if (size === 0) this.done(r.answer);
      }
    }
  }

  private parseHead(head: string): Reading {
    const status = Number(head.slice(9, 12));
    let length = 0;
    let chunked = false;
    let retryAfter: number | undefined;
    for (const line of head.split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = value.toLowerCase().includes('chunked');
      else if (name === 'retry-after') retryAfter = Number(value);
      else if (name === 'connection') this.closeAfter = value.toLowerCase() === 'close';
    }
    const answer = { status, retryAfter };
    if (chunked) return { need: 'chunks', answer };
    return { need: 'body', left: length, answer };
  }

  private done(answer: Answer): void {
    this.reading = { need: 'head' };
    const p = this.pending;
    this.pending = undefined;
    if (this.closeAfter) this.close();
    p?.resolve(answer);
  }

  private broken(why: string): void {
    this.close();
    this.fail(new Error(`unreadable response: ${why}`));
  }
}
