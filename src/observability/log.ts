/**
 * The process's JSON log, on pino: one line per event, on stdout.
 *
 * Lines read `{"level":"info","time":"<ISO>","message":"...",...fields}`, the
 * format the service logged before pino, which operators' queries and the
 * process tests read. Nothing secret is ever logged: requests are logged by
 * route pattern (never the URL, which carries a token) and without headers,
 * and the paths below are censored should a header object or a key ever be
 * passed as a field.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { LogLevel } from '../config.ts';

export type { PinoLogger };

/** Fields that must never reach a log line, wherever they turn up (one level deep for `*`). */
export const REDACTED_PATHS = [
  'authorization',
  'cookie',
  'apiKey',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  '*.authorization',
  '*.apiKey',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["x-api-key"]',
];

/**
 * A pino logger at `level`. Writes synchronously (by default to stdout), so
 * the lines logged just before `process.exit` are not lost.
 */
export function createLogger(
  level: LogLevel,
  destination: DestinationStream = pino.destination({ dest: 1, sync: true }),
): PinoLogger {
  return pino(
    {
      level,
      messageKey: 'message',
      errorKey: 'err',
      // No pid or hostname: the platform that collects the lines knows them.
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}

/** The service's small logging interface (src/service.ts's Logger), over pino. */
export interface FieldLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * `message` comes first, before the fields, as the service always logged;
 * a field that is itself called `message` is kept as `detail`.
 */
export function fieldLogger(logger: PinoLogger): FieldLogger {
  const line = (message: string, fields: Record<string, unknown> = {}) => {
    const { message: detail, ...rest } = fields;
    return { message, ...(detail === undefined ? {} : { detail }), ...rest };
  };
  return {
    info: (message, fields) => {
      logger.info(line(message, fields));
    },
    warn: (message, fields) => {
      logger.warn(line(message, fields));
    },
    error: (message, fields) => {
      logger.error(line(message, fields));
    },
  };
}
