// Server-Sent Events from the client's side: a parser for the text/event-stream format
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
// and a plain node:http subscriber for tests and the benchmark. tools/subscribe.ts uses
// the parser with fetch.
import http from 'node:http';

type SseMessage = { id: string | undefined; event: string; data: string };

type SseParser = {
  push(chunk: Uint8Array | string): void;
  /** The last `id:` seen, as an EventSource keeps it for Last-Event-ID. */
  lastEventId(): string;
};

export function createSseParser(onMessage: (m: SseMessage) => void, onComment: (text: string) => void = () => undefined): SseParser {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let skipLf = false;
  let data: string[] = [];
  let event = '';
  let lastId = '';
  let idSeen: string | undefined;

  const line = (text: string) => {
    if (text === '') {
      if (data.length > 0) onMessage({ id: idSeen, event: event || 'message', data: data.join('\n') });
      data = [];
      event = '';
      idSeen = undefined;
      return;
    }
    if (text.startsWith(':')) {
      onComment(text.slice(1).trimStart());
      return;
    }
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) lastId = idSeen = value;
  };

  return {
    push(chunk) {
      buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer.charCodeAt(i);
        if (c === 10 && skipLf && i === start) {
          // The LF of a CRLF split across two chunks.
          start = i + 1;
          skipLf = false;
          continue;
        }
        skipLf = false;
        if (c !== 10 && c !== 13) continue;
        line(buffer.slice(start, i));
        if (c === 13) {
          if (i + 1 < buffer.length) {
            if (buffer.charCodeAt(i + 1) === 10) i++;
          } else {
            skipLf = true;
          }
        }
        start = i + 1;
      }
      buffer = buffer.slice(start);
    },
    lastEventId: () => lastId,
  };
}

export type StreamClient = {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body of an answer other than 200, parsed if JSON. */
  body: unknown;
  /** Every message's data, parsed as JSON, in arrival order. */
  events: any[];
  /** Every message's `id:`. */
  ids: (string | undefined)[];
  /** When each message arrived (Date.now()). */
  receivedAt: number[];
  comments: string[];
  /** When each comment arrived. */
  commentAt: number[];
  /** Resolves when the server ends the stream or the connection closes. */
  ended: Promise<void>;
  isEnded(): boolean;
  close(): void;
};

/** Opens GET `path` as an SSE subscriber; resolves once the answer's headers (and, for an error, its body) are in. */
export function openStream(
  baseUrl: string,
  path: string,
  opts: {
    headers?: Record<string, string>;
    onEvent?: (e: any, at: number, id: string | undefined) => void;
    /** A slow reader: after each chunk, stop reading for this long (the server's buffers fill). */
    readDelayMs?: number;
  } = {},
): Promise<StreamClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(path, baseUrl), { headers: { accept: 'text/event-stream', ...opts.headers } }, (res) => {
      let endedFlag = false;
      let markEnded: () => void = () => undefined;
      const client: StreamClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: undefined,
        events: [],
        ids: [],
        receivedAt: [],
        comments: [],
        commentAt: [],
        ended: new Promise<void>((r) => (markEnded = r)),
        isEnded: () => endedFlag,
        close: () => req.destroy(),
      };
      const finish = () => {
        endedFlag = true;
        markEnded();
      };
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
      if (client.status !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            client.body = JSON.parse(text);
          } catch {
            client.body = text;
          }
          resolve(client);
        });
        return;
      }
      const parser = createSseParser(
        (m) => {
          const at = Date.now();
          const e = JSON.parse(m.data);
          client.events.push(e);
          client.ids.push(m.id);
          client.receivedAt.push(at);
          opts.onEvent?.(e, at, m.id);
        },
        (text) => {
          client.comments.push(text);
          client.commentAt.push(Date.now());
        },
      );
      res.on('data', (chunk: Buffer) => {
        parser.push(chunk);
        if (opts.readDelayMs !== undefined) {
          res.pause();
          setTimeout(() => res.resume(), opts.readDelayMs);
        }
      });
      resolve(client);
    });
    req.on('error', reject);
  });
}

export type Follower = {
  events: any[];
  ids: (string | undefined)[];
  /** How many times the server ended the stream and it was resumed. */
  resumed(): number;
  stop(): void;
};

/**
 * A subscriber that resumes with Last-Event-ID whenever the server ends its stream (it cuts
 * readers too far behind), as an EventSource does; from the start the server named if no
 * event came yet.
 */
export async function follow(
  baseUrl: string,
  path: string,
  opts: { headers?: Record<string, string>; readDelayMs?: number } = {},
): Promise<Follower> {
  const events: any[] = [];
  const ids: (string | undefined)[] = [];
  let resumed = 0;
  let stopped = false;
  let current: StreamClient | undefined;
  let start: string | undefined;
  const connect = async (): Promise<void> => {
    const last = ids.at(-1) ?? start;
    const c = await openStream(baseUrl, path, {
      headers: { ...opts.headers, ...(last === undefined ? {} : { 'last-event-id': last }) },
      readDelayMs: opts.readDelayMs,
      onEvent: (e, _at, id) => {
        events.push(e);
        ids.push(id);
      },
    });
    if (c.status !== 200) throw new Error(`${path} answered ${c.status}: ${JSON.stringify(c.body)}`);
    current = c;
    void c.ended.then(() => {
      start ??= /^after (\d+)$/.exec(c.comments[0] ?? '')?.[1];
      if (stopped) return;
      resumed++;
      void reconnect();
    });
  };
  const reconnect = async (): Promise<void> => {
    while (!stopped) {
      try {
        return await connect();
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  await connect();
  return {
    events,
    ids,
    resumed: () => resumed,
    stop: () => {
      stopped = true;
      current?.close();
    },
  };
}
