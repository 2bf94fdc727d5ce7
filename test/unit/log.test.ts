/**
 * The log's lines: their format, what is redacted, and the request line's
 * logger (same destination, level and format, no redaction).
 */
import { describe, expect, it } from 'vitest';
import { createLogger, fieldLogger, unredacted } from '../../src/observability/log.ts';

function captured(level: 'info' | 'warn' = 'info') {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(level, {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, lines };
}

describe('the log', () => {
  it('writes level, ISO time and message first, and redacts secrets a caller passes, one level deep', () => {
    const { logger, lines } = captured();
    fieldLogger(logger).info('configured', {
      authorization: 'Bearer top',
      apiKey: 'k1',
      client: { authorization: 'Bearer nested', apiKey: 'k2', name: 'shop' },
      headers: { authorization: 'Bearer h', 'x-api-key': 'k3', accept: 'json' },
    });
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(Object.keys(line ?? {}).slice(0, 3)).toEqual(['level', 'time', 'message']);
    expect(line).toMatchObject({
      level: 'info',
      message: 'configured',
      authorization: '[redacted]',
      apiKey: '[redacted]',
      client: { authorization: '[redacted]', apiKey: '[redacted]', name: 'shop' },
      headers: { authorization: '[redacted]', 'x-api-key': '[redacted]', accept: 'json' },
    });
    expect(new Date(String(line?.time)).toISOString()).toBe(line?.time);
    expect(JSON.stringify(lines)).not.toMatch(/top|nested|k1|k2|k3|Bearer h/);
  });

  it("gives request lines a logger on the same destination, at the log's level and in its format", () => {
    const { logger, lines } = captured('warn');
    const requests = unredacted(logger);
    requests.info({ message: 'request', status: 200 });
    expect(lines).toHaveLength(0);
    requests.warn({ message: 'request', status: 200, authorization: 'not redacted here' });
    logger.warn({ message: 'other', authorization: 'secret' });
    expect(lines).toHaveLength(2);
    expect(Object.keys(lines[0] ?? {}).slice(0, 3)).toEqual(['level', 'time', 'message']);
    expect(lines[0]).toMatchObject({ level: 'warn', message: 'request', status: 200 });
    // Only the code's own scalar fields go through it: it does not redact.
    expect(lines[0]?.authorization).toBe('not redacted here');
    expect(lines[1]?.authorization).toBe('[redacted]');
  });
});
