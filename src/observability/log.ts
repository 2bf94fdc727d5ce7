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
import sonicBoom, { type SonicBoomOpts } from 'sonic-boom';
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
 * Lines waiting for a reader that does not keep up (a stalled log collector)
 * are held up to this much; past it new lines are dropped, so a stalled
 * reader costs log lines, never the process's memory or its event loop.
 */
export const LOG_BUFFER_LIMIT_BYTES = 16 * 1024 * 1024;

/** How every line is shaped (see the top of this file). */
const LINE_OPTIONS = {
  messageKey: 'message',
  errorKey: 'err',
  // No pid or hostname: the platform that collects the lines knows them.
  base: null,
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
} as const;

/**
 * Consecutive failed attempts (100 ms apart) to write to a reader that takes
 * nothing (a full pipe) before the lines held are given up: it bounds the
 * wait at exit to about a second.
 */
const WRITE_RETRIES = 10;

// A CommonJS module: its class is a property of the default export.
const { SonicBoom } = sonicBoom;

let stdoutStream: InstanceType<typeof SonicBoom> | null = null;

/**
 * The process's stdout as a log destination, one for every logger. Lines are
 * written without blocking: those logged while a write is under way go out
 * together in the next one, so a busy process makes one write per batch
 * instead of one per line. At most LOG_BUFFER_LIMIT_BYTES wait for a slow
 * reader; later lines are dropped.
 *
 * A write that fails (a full disk: ENOSPC; the reader gone: EPIPE; EIO)
 * costs the lines, never the process: the next line tries again, and the
 * lines still held when the process exits are written synchronously as far
 * as they can be, then given up. (pino's own stdout stream retried a
 * failed write forever, synchronously, at exit, and the process hung.)
 */
export function stdoutDestination(): DestinationStream {
  if (stdoutStream !== null) return stdoutStream;
  const options: SonicBoomOpts & { maxWriteRetries: number } = {
    fd: 1,
    sync: false,
    maxLength: LOG_BUFFER_LIMIT_BYTES,
    maxWriteRetries: WRITE_RETRIES,
  };
  const stream = new SonicBoom(options);
  stream.on('error', () => undefined);
  process.on('exit', () => {
    try {
      stream.flushSync();
    } catch {
      // Nowhere left to say so: the lines are lost.
    }
  });
  stdoutStream = stream;
  return stream;
}

/** A pino logger at `level`, by default on stdout (see stdoutDestination). */
export function createLogger(
  level: LogLevel,
  destination: DestinationStream = stdoutDestination(),
): PinoLogger {
  return pino(
    { level, ...LINE_OPTIONS, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
    destination,
  );
}

/**
 * A logger on `logger`'s destination, at its level and in its format, that
 * does not redact: for lines whose every field the code builds itself from
 * values that cannot be secret (a request's id, method, route pattern,
 * status, duration). Redacting a line costs several times as much as writing
 * it, and such a line is written for every request; anything else (an error,
 * fields a caller passes) goes through `logger`.
 */
export function unredacted(logger: PinoLogger): PinoLogger {
  const destination = (logger as unknown as Record<symbol, DestinationStream>)[
    pino.symbols.streamSym
  ];
  return pino({ level: logger.level, ...LINE_OPTIONS }, destination);
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
