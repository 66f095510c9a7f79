// Reading a request body into memory under two bounds: MAX_BODY_BYTES per request (after
// decompression), and MAX_INFLIGHT_BYTES for every body held by this process at once. Both
// count bytes as they actually arrive, never what a Content-Length header promises: clients
// that declare 16 MB and send a byte a second hold a byte each, not the API's whole budget.
import type { IncomingMessage } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { HttpError, unavailable } from '../http/errors.js';

export type InflightBytes = {
  readonly limit: number;
  readonly used: number;
  /** Takes n bytes unless that goes past the limit; `held` (what the caller holds) may always grow while it is all there is. */
  take(n: number, held: number): boolean;
  give(n: number): void;
};

/** One budget per limit in the process: see inflightBytes. */
const budgets = new Map<number, InflightBytes>();

/**
 * The process's budget of `limit` bytes (MAX_INFLIGHT_BYTES): POST /publish and the ingest
 * routes each ask for it and get the same one, so that bodies held by all of them together
 * stay within the setting.
 */
export function inflightBytes(limit: number): InflightBytes {
  let budget = budgets.get(limit);
  if (budget === undefined) budgets.set(limit, (budget = newBudget(limit)));
  return budget;
}

function newBudget(limit: number): InflightBytes {
  let used = 0;
  return {
    limit,
    get used() {
      return used;
    },
    take(n, held) {
      if (used + n > limit && used > held) return false;
      used += n;
      return true;
    },
    give(n) {
      used -= n;
    },
  };
}

const DECODERS: Record<string, () => Transform> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

/** The decoder a Content-Encoding asks for (matched case-insensitively, as HTTP says), or none. */
function decoderFor(header: string | undefined): Transform | undefined {
  const coding = (header ?? '').trim().toLowerCase();
  if (coding === '' || coding === 'identity') return undefined;
  const make = DECODERS[coding];
  if (make === undefined) {
    throw new HttpError(415, 'unsupported_media_type', `content encoding "${header}" is not supported: send gzip, deflate, br or none`);
  }
  return make();
}

/** Reads and drops the rest of a body, so the client hears the answer instead of a reset. */
function discard(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    if (req.complete || req.destroyed) return resolve();
    req.once('end', resolve);
    req.once('close', resolve);
    req.once('error', () => resolve());
    req.resume();
  });
}

/** The body as text (UTF-8, decoded strictly chunk by chunk as it arrives) and the bytes it held. */
export type Body = { text: string; held: number };

/** The body as it came (after its Content-Encoding), for binary formats such as protobuf. */
export type BinaryBody = { bytes: Buffer; held: number };

/** What receives the body's chunks as they arrive; `end` throws an HttpError for a body it refuses. */
type Sink<T> = { push(chunk: Buffer): void; end(): T };

const NOT_UTF8 = 'the body is not valid UTF-8 (JSON text is UTF-8: RFC 8259, section 8.1)';

/**
 * The whole body as text, its bytes taken from `inflight` (the caller gives `held` back once
 * done with them). Refuses with 413 past `maxBodyBytes` and 503 when the process holds too
 * much; either way the rest of the body is read and dropped before the error is thrown.
 */
export async function readBody(req: IncomingMessage, maxBodyBytes: number, inflight: InflightBytes): Promise<Body> {
  // Decoded as each chunk comes, not all at once at the end: 16 MB decoded in one call held
  // the event loop for 180 ms; a chunk at a time takes a millisecond or so.
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const chunks: string[] = [];
  const decode = (chunk?: Buffer) => {
    try {
      chunks.push(chunk === undefined ? utf8.decode() : utf8.decode(chunk, { stream: true }));
    } catch {
      throw new HttpError(400, 'invalid_json', NOT_UTF8);
    }
  };
  const { value, held } = await receive(req, maxBodyBytes, inflight, {
    push: decode,
    end: () => {
      decode();
      return chunks.length === 1 ? chunks[0]! : chunks.join('');
    },
  });
  return { text: value, held };
}

/** The whole body as bytes, under the same limits as readBody. */
export async function readBinaryBody(req: IncomingMessage, maxBodyBytes: number, inflight: InflightBytes): Promise<BinaryBody> {
  const chunks: Buffer[] = [];
  const { value, held } = await receive(req, maxBodyBytes, inflight, {
    push: (chunk) => chunks.push(chunk),
    end: () => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
  });
  return { bytes: value, held };
}

async function receive<T>(req: IncomingMessage, maxBodyBytes: number, inflight: InflightBytes, sink: Sink<T>): Promise<{ value: T; held: number }> {
  const decoder = decoderFor(req.headers['content-encoding']);
  const declared = Number(req.headers['content-length']);
  // Never read: Node reads and drops the body once the 413 is sent.
  if (decoder === undefined && declared > maxBodyBytes) throw tooLarge(maxBodyBytes);
  // A body that could not fit beside what is held now is refused before it is read.
  const expected = decoder === undefined && Number.isSafeInteger(declared) ? declared : 0;
  if (inflight.used > 0 && inflight.used + expected > inflight.limit) {
    await discard(req);
    throw busy();
  }
  const source: Readable = decoder === undefined ? req : req.pipe(decoder);
  let held = 0;
  let failed = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        failed = true;
        reject(err);
      };
      source.on('data', (chunk: Buffer) => {
        if (failed) return;
        if (held + chunk.length > maxBodyBytes) return fail(tooLarge(maxBodyBytes));
        if (!inflight.take(chunk.length, held)) return fail(busy());
        held += chunk.length;
        try {
          sink.push(chunk);
        } catch (err) {
          return fail(err as Error);
        }
      });
      source.once('end', resolve);
      decoder?.on('error', (err) => fail(new HttpError(400, 'invalid_encoding', `the body is not valid ${req.headers['content-encoding']} data: ${err.message}`)));
      req.on('error', fail);
      req.once('close', () => {
        if (!req.complete) fail(new HttpError(400, 'aborted', 'the client went away before its body arrived'));
      });
    });
  } catch (err) {
    inflight.give(held);
    if (decoder !== undefined) {
      req.unpipe(decoder);
      decoder.destroy();
    }
    source.removeAllListeners('data');
    await discard(req);
    throw err;
  }
  try {
    return { value: sink.end(), held };
  } catch (err) {
    inflight.give(held);
    throw err;
  }
}

const tooLarge = (max: number) => new HttpError(413, 'payload_too_large', `the body is larger than ${max} bytes`);
const busy = () => unavailable('too many request bytes in flight; retry later', 1);
