// MAX_CONNECTIONS, kept so that idle sockets give way to new ones: at the cap, the sockets
// with no request under way (idle keep-alive connections, and connections that have sent
// nothing yet) are closed first, and a new socket is turned away only when every socket is
// busy. Node's own server.maxConnections would turn it away while idle ones sit there.
// A socket that connected and has sent nothing counts as idle here: the oldest one is closed.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../../shared/log.js';

export function capConnections(server: Server, cap: number, log: Logger): void {
  const open = new Set<Socket>();
  let dropped = 0;
  // First in line, before the HTTP server takes the socket as a connection.
  server.prependListener('connection', (socket: Socket) => {
    if (open.size >= cap) {
      // Node knows which connections are between requests; the new socket is not among
      // them yet, so it is not closed here.
      server.closeIdleConnections();
      for (const s of open) if (s.destroyed) open.delete(s);
    }
    if (open.size >= cap) {
      // A socket that has sent nothing yet holds a slot without a request: the oldest such
      // gives way, rather than every new client being refused until its header deadline.
      for (const s of open) {
        if (s.bytesRead === 0) {
          s.destroy();
          open.delete(s);
          break;
        }
      }
    }
    if (open.size >= cap) {
      if (dropped++ % 1000 === 0) log.warn({ maxConnections: cap, dropped }, 'connection cap reached with every connection busy: closing new sockets');
      socket.destroy();
      return;
    }
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
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
