// MAX_CONNECTIONS: the producers' sockets, kept so that quiet ones give way to new ones.
// A socket is quiet when it has no request under way and has not sent a byte since its last
// answer (or since it connected): an idle keep-alive connection, or one that has sent
// nothing. At the cap, the socket quiet for longest is closed to make room, and a new socket
// is turned away only when none is quiet. Node's own server.maxConnections would turn it
// away while quiet ones sit there; its closeIdleConnections() closed every idle one at once,
// and with them a producer's socket whose next request had arrived but was not read yet
// (a reset for that producer). So a new socket is let in while a quiet one is left to give
// way, and the one that does is chosen after the reads already under way (setImmediate, as
// closeIdleAfterPendingReads below): for that turn of the event loop the count passes the
// cap by the sockets let in.
// A socket set aside (a stream's, a waiting publish's: see budgets.ts) is out of this count
// while it is, so that what lasts cannot fill it.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../../shared/log.js';

type Tracked = {
  /** Requests under way (more than one when pipelined). */
  busy: number;
  /** Requests under way that set the socket aside. */
  aside: number;
  quietSince: number;
  /** bytesRead when it last fell quiet: any byte since means a request is coming. */
  readAtQuiet: number;
};

export class ConnectionCap {
  /** The sockets counted against the cap. */
  private readonly open = new Set<Socket>();
  private readonly tracked = new Map<Socket, Tracked>();
  /** Sockets let in past the cap since the last sweep, each for a quiet one it will close. */
  private readonly pending = new Set<Socket>();
  private dropped = 0;

  constructor(
    server: Server,
    private readonly cap: number,
    private readonly log: Logger,
  ) {
    // First in line, before the HTTP server takes the socket as a connection.
    server.prependListener('connection', (socket: Socket) => this.accept(socket));
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.started(req, res));
  }

  /** Takes `res`'s socket out of the count until `res` is over; then it counts again, if still open. */
  setAsideUntilAnswered(res: ServerResponse): void {
    const socket = res.socket;
    const t = socket === null ? undefined : this.tracked.get(socket);
    if (socket === null || t === undefined) return;
    t.aside++;
    this.open.delete(socket);
    res.once('close', () => {
      if (--t.aside === 0 && !socket.destroyed) this.open.add(socket);
    });
  }

  private accept(socket: Socket): void {
    if (this.open.size >= this.cap) for (const s of this.open) if (s.destroyed) this.open.delete(s);
    if (this.open.size >= this.cap && this.quietCount() <= this.pending.size) {
      if (this.dropped++ % 1000 === 0) {
        this.log.warn({ maxConnections: this.cap, dropped: this.dropped }, 'connection cap reached with every connection busy: closing new sockets');
      }
      socket.destroy();
      return;
    }
    this.tracked.set(socket, { busy: 0, aside: 0, quietSince: performance.now(), readAtQuiet: 0 });
    this.open.add(socket);
    socket.once('close', () => {
      this.open.delete(socket);
      this.tracked.delete(socket);
    });
    if (this.open.size > this.cap) {
      if (this.pending.size === 0) setImmediate(() => this.sweep());
      this.pending.add(socket);
    }
  }

  private started(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    const t = this.tracked.get(socket);
    if (t === undefined) return;
    t.busy++;
    const settle = () => {
      if (t.busy > 0) return;
      t.quietSince = performance.now();
      t.readAtQuiet = socket.bytesRead;
    };
    res.once('close', () => {
      t.busy--;
      settle();
    });
    // A body left unread by an early answer is read (and dropped) after it.
    req.once('end', settle);
  }

  /** Closes the sockets quiet for longest until the count is back at the cap (or none is quiet). */
  private sweep(): void {
    this.pending.clear();
    while (this.open.size > this.cap) {
      const victim = this.longestQuiet();
      if (victim === undefined) return;
      victim.destroy();
      this.open.delete(victim);
    }
  }

  private quiet(s: Socket): boolean {
    const t = this.tracked.get(s);
    return t !== undefined && !s.destroyed && t.busy === 0 && s.bytesRead === t.readAtQuiet;
  }

  /** Quiet sockets that may give way: not those let in past the cap, waiting for theirs. */
  private quietCount(): number {
    let n = 0;
    for (const s of this.open) if (!this.pending.has(s) && this.quiet(s)) n++;
    return n;
  }

  private longestQuiet(): Socket | undefined {
    let victim: Socket | undefined;
    let since = Infinity;
    for (const s of this.open) {
      const t = this.tracked.get(s)!;
      if (this.quiet(s) && t.quietSince < since) [victim, since] = [s, t.quietSince];
    }
    return victim;
  }
}

/**
 * Closes a keep-alive socket at its idle deadline only if no request has started on it.
 * Node closes it from the timer itself, and timers run before the event loop reads sockets:
 * a client's next request already waiting in the socket (the loop was busy, or the client
 * reused the socket at the last moment) was met with a reset, the "fetch failed: ECONNRESET
 * / EPIPE" of a producer. Deferred to setImmediate, the close comes after that read, and a
 * request that was read has cleared the deadline (Node sets the socket's timeout to 0).
 */
export function closeIdleAfterPendingReads(server: Server): void {
  // With a listener here, Node leaves the socket open on its 'timeout'; this decides.
  server.on('timeout', (socket: Socket) => {
    const armed = socket.timeout;
    setImmediate(() => {
      if (!socket.destroyed && socket.timeout === armed) socket.destroy();
    });
  });
}
