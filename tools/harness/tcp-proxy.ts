// A TCP proxy a test or the chaos run owns, between processes and a server (PostgreSQL,
// Redis): it can add latency to every chunk, cut the link (every connection closed, new ones
// refused) and heal it, hold it (a blackhole: nothing passes either way, nothing is closed,
// until it is released), or reset the connections under way. The network faults that hosts
// meet, without root.
import net from 'node:net';

export class TcpProxy {
  readonly sockets = new Set<net.Socket>();
  private server: net.Server | undefined;
  private isCut = false;
  /** While held: the chunks not yet sent, in the order they arrived (both ways). */
  private held: (() => void)[] | undefined;
  /** Added to every chunk, each way (order is kept: every chunk waits the same). */
  delayMs = 0;
  port = 0;
  /** Connections let through since the start: a link no process used shows 0. */
  accepted = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** A URL like `url`, its host and port this proxy's. */
  static forUrl(url: string): TcpProxy {
    const u = new URL(url);
    return new TcpProxy(u.hostname, Number(u.port || (u.protocol.startsWith('redis') ? 6379 : 5432)));
  }

  /** `of` with this proxy's host and port (an http URL without a trailing slash, as a base URL). */
  url(of: string): string {
    const u = new URL(of);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    const text = u.toString();
    return u.protocol === 'http:' ? text.replace(/\/$/, '') : text;
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.isCut) {
      client.resetAndDestroy();
      return;
    }
    this.accepted++;
    const upstream = net.connect(this.targetPort, this.targetHost);
    upstream.on('error', () => undefined);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.once('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    this.pipe(client, upstream);
    this.pipe(upstream, client);
  }

  private pipe(from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk) => {
      const send = () => {
        if (!to.destroyed) to.write(chunk);
      };
      if (this.held) this.held.push(send);
      else if (this.delayMs > 0) setTimeout(send, this.delayMs);
      else send();
    });
  }

  /** Resets every connection under way; new ones are let through. */
  reset(): void {
    for (const s of this.sockets) s.resetAndDestroy();
  }

  /** Resets every connection and refuses new ones until heal(). */
  cut(): void {
    this.isCut = true;
    this.reset();
  }

  heal(): void {
    this.isCut = false;
  }

  /**
   * A blackhole, as a dead route makes one: every byte either way, on open and new
   * connections, is kept back (TCP would retransmit it) until release() delivers it in order.
   */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const send of held) send();
  }

  async close(): Promise<void> {
    this.held = undefined;
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
