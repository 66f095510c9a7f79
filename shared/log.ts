// Structured JSON logs on stdout (pino). Secrets never reach a log line.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { name: string; level: string }): Logger {
  return pino({
    name: opts.name,
    level: opts.level,
    base: { service: opts.name, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['authorization', 'headers.authorization', 'req.headers.authorization', 'apiKey', 'config.apiKey'],
      censor: '[redacted]',
    },
  });
}
