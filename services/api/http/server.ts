// The API's HTTP server: its timeouts, its socket budgets, and a close that waits for the
// requests under way. Built before the app it serves (the app's parts close before it, so
// that nothing it answers is still waiting when it closes), then given the app to serve.
import http from 'node:http';
import type { Logger } from '../../../shared/log.js';
import { answerClientErrors } from './client-errors.js';
import { errorAnswer, type HttpError } from './errors.js';
import { writeJson } from './json-answer.js';
import { SocketBudgets } from './budgets.js';
import { handleExpect } from './expect.js';
import { closeIdleAfterPendingReads, ConnectionCap } from './connections.js';

type ServerOptions = {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  maxWaiters: number;
  /** API_KEY: a publish without it is told 401 rather than 503 when the waiters are too many. */
  apiKey: string | undefined;
  /** For `Expect: 100-continue` (expect.ts): what is refused before the body is asked for. */
  readApiKey: string | undefined;
  maxBodyBytes: number;
};

type Listener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * How the app answers a request refused here, before it sees it (no room to wait, an
 * `Expect` refused): with its request id and in its publish metrics, as every other answer.
 * `close`: the body was never read, so the connection cannot carry a next request.
 */
export type EarlyAnswer = (req: http.IncomingMessage, res: http.ServerResponse, err: HttpError, close: boolean) => void;

/** What the server serves: every request the app's, and the app's word on those refused before it. */
export type Served = { listener: Listener; answerEarly: EarlyAnswer };

export class ApiServer {
  readonly server: http.Server;
  private readonly budgets: SocketBudgets;
  private listener: Listener | undefined;
  /** Until the app is given (listen), a bare JSON answer; nothing is served before then anyway. */
  private answerEarly: EarlyAnswer;
  private accepting = false;
  private closing: Promise<void> | undefined;

  constructor(o: ServerOptions, log: Logger) {
    this.answerEarly = (_req, res, err, close) => writeJson(res, errorAnswer(err, log), close);
    const answer: EarlyAnswer = (req, res, err, close) => this.answerEarly(req, res, err, close);
    // A slow or silent client cannot hold a socket forever. Node enforces both timeouts only
    // when it sweeps its connections (every 30 s by default), so sweep every second.
    // https://nodejs.org/docs/latest-v20.x/api/http.html#httpcreateserveroptions-requestlistener
    // Both bound receiving the request only: the sweep skips a connection once its request is
    // complete, so a stream (a GET, complete at once) may last as long as it is read.
    this.server = http.createServer(
      {
        headersTimeout: o.headersTimeoutMs,
        requestTimeout: o.requestTimeoutMs,
        keepAliveTimeout: o.keepAliveTimeoutMs,
        connectionsCheckingInterval: Math.min(1_000, o.headersTimeoutMs),
      },
      (req, res) => this.serve(req, res),
    );
    // Past the cap, idle sockets make room first; a new socket is closed only when all are
    // busy. Streams and waiting publishes count apart (budgets.ts), so open sockets stay
    // bounded by MAX_CONNECTIONS + MAX_SUBSCRIBERS + MAX_WAITERS whatever the clients do.
    this.budgets = new SocketBudgets(new ConnectionCap(this.server, o.maxConnections, log), {
      maxWaiters: o.maxWaiters,
      apiKey: o.apiKey,
      log,
      answer,
    });
    // A request that will be refused (no key, too large, no room to wait) is refused before
    // `100 Continue` asks its client for the body.
    handleExpect(this.server, { apiKey: o.apiKey, readApiKey: o.readApiKey, maxBodyBytes: o.maxBodyBytes, answer }, (req, res) =>
      this.serve(req, res, true),
    );
    closeIdleAfterPendingReads(this.server);
    answerClientErrors(this.server, log);
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse, continueFirst = false): void {
    // server.close() leaves busy keep-alive sockets open, and a busy producer keeps them
    // busy: once stopping, each answer ends its connection.
    if (!this.accepting) res.setHeader('Connection', 'close');
    if (!this.budgets.admit(req, res)) return;
    if (continueFirst) res.writeContinue();
    this.listener?.(req, res);
  }

  /** True from listening until stopping began: what /ready reports. */
  get ready(): boolean {
    return this.accepting;
  }

  /** Serves the app on `port`; resolves with the port once listening (errors: the server's 'error' event). */
  listen(app: Served, port: number, host: string): Promise<number> {
    this.listener = app.listener;
    this.answerEarly = app.answerEarly;
    return new Promise((resolve) => {
      this.server.listen(port, host, () => {
        this.accepting = true;
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  /** Not ready any more: /ready answers 503 and every answer ends its connection. */
  notReady(): void {
    this.accepting = false;
  }

  /** Stops accepting and resolves once every request under way is answered. Safe to call twice. */
  close(): Promise<void> {
    this.accepting = false;
    this.closing ??= new Promise<void>((resolve) => {
      // Sockets that were busy when closing began go idle one by one: close them then.
      const sweep = setInterval(() => this.server.closeIdleConnections(), 100);
      this.server.close(() => {
        clearInterval(sweep);
        resolve();
      });
      this.server.closeIdleConnections();
    });
    return this.closing;
  }
}
