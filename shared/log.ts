// Structured JSON logs on stdout (pino). Secrets never reach a log line.
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** `destination` is for tests that read what was written; services log to stdout. */
export function createLogger(opts: { name: string; level: string; destination?: DestinationStream }): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level,
    base: { service: opts.name, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['authorization', 'headers.authorization', 'req.headers.authorization', 'apiKey', 'config.apiKey'],
      censor: '[redacted]',
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
