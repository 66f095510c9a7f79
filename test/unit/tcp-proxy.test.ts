// The TCP proxy's blackhole (hold, release): nothing passes while held, nothing is closed, and
// what was sent meanwhile arrives afterwards in order; the chaos run's link-cut relies on it.
import net from 'node:net';
import { expect } from 'chai';
import { TcpProxy } from '../../tools/harness/tcp-proxy.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('TcpProxy hold and release', () => {
  let echo: net.Server;
  let proxy: TcpProxy;

  beforeEach(async () => {
    echo = net.createServer((s) => {
      s.on('error', () => undefined); // the proxy resets the upstream side on close
      s.pipe(s);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy('127.0.0.1', (echo.address() as net.AddressInfo).port);
    await proxy.start();
  });
  afterEach(async () => {
    await proxy.close();
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  });

  async function connect(): Promise<{ socket: net.Socket; received: () => string }> {
    const socket = net.connect(proxy.port, '127.0.0.1');
    socket.on('error', () => undefined);
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    await new Promise((resolve) => socket.once('connect', resolve));
    return { socket, received: () => text };
  }

  it('keeps back the bytes of open and new connections until released, then delivers them in order', async () => {
    const open = await connect();
    open.socket.write('a');
    await pause(50);
    expect(open.received()).to.equal('a');
    proxy.hold();
    open.socket.write('b');
    open.socket.write('c');
    const fresh = await connect();
    fresh.socket.write('x');
    await pause(200);
    expect([open.received(), fresh.received()]).to.deep.equal(['a', '']);
    expect(open.socket.destroyed || fresh.socket.destroyed).to.equal(false);
    proxy.release();
    await pause(100);
    expect([open.received(), fresh.received()]).to.deep.equal(['abc', 'x']);
    open.socket.destroy();
    fresh.socket.destroy();
  });
});
