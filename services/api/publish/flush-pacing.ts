// When gathered events go out. With no add of gathered events under way, what gathers goes
// out on the next turn of the event loop (no waiting when the API is quiet); while one is
// under way, events gather until it returns, so batches grow exactly as fast as Redis is
// slow. COALESCE_MS bounds the wait either way.
export class FlushPacing {
  private readonly lingerMs: number;
  private readonly send: () => void;
  /** Adds of gathered events under way. */
  private addsUnderWay = 0;
  private linger: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  constructor(lingerMs: number, send: () => void) {
    this.lingerMs = lingerMs;
    this.send = send;
  }

  /** A job began gathering: it goes out after lingerMs at the latest. */
  opened(): void {
    this.linger = setTimeout(this.send, this.lingerMs);
  }

  /** Events joined a job that is not full: with no add under way, it goes out on the next turn. */
  joined(): void {
    if (this.addsUnderWay === 0) this.soon();
  }

  /** The gathered job is going out now. */
  sending(): void {
    clearTimeout(this.linger);
    this.linger = undefined;
    this.addsUnderWay++;
  }

  /**
   * An add of gathered events returned. What gathered meanwhile goes out on the next turn,
   * not now: the reply came in with other sockets' reads of this same turn, and their
   * requests join the job instead of waiting a whole add for the next.
   */
  returned(gathering: boolean): void {
    this.addsUnderWay--;
    if (this.addsUnderWay === 0 && gathering) this.soon();
  }

  private soon(): void {
    this.immediate ??= setImmediate(() => {
      this.immediate = undefined;
      if (this.addsUnderWay === 0) this.send();
    });
  }

  /** Nothing is gathering once the enqueuer has flushed: a timer left would only find nothing to send. */
  close(): Promise<void> {
    clearTimeout(this.linger);
    clearImmediate(this.immediate);
    this.linger = undefined;
    this.immediate = undefined;
    return Promise.resolve();
  }
}
