/**
 * The engine with the toy ticket machine as a real process, for tests about
 * processes (a crash between persist and effect, a clock 10 minutes off).
 *
 *   toy-process.ts worker               delivers timers, sweeps the outbox
 *   toy-process.ts send KEY EVENT_JSON  sends one event, prints `result <json>`
 *
 * Env: REDIS_URL, PREFIX; CRASH_AT=before-effect|after-effect kills the
 * process (SIGKILL) inside the ship effect, before or after it ships;
 * PAUSE_AT=<hook point> stops it (SIGSTOP) the first time a command reaches
 * that point, after printing `paused at <point>`; LOCK_TTL_MS its lock lease.
 */
import { writeSync } from 'node:fs';
import { shipmentsKey, startTickets } from '../support/engine-harness.ts';
import type { ShipParams, TicketEvent } from './ticket.machine.ts';

const redisUrl = process.env.REDIS_URL ?? '';
const prefix = process.env.PREFIX ?? '';
const crashAt = process.env.CRASH_AT;
let pauseAt = process.env.PAUSE_AT;
const lockTtlMs = Number(process.env.LOCK_TTL_MS ?? 5_000);
const [mode, key, eventJson] = process.argv.slice(2);

const { engine, tickets } = await startTickets(redisUrl, prefix, {
  lockTtlMs,
  hook: (point) => {
    if (point !== pauseAt) return;
    pauseAt = undefined;
    // Written synchronously: the process stops right after.
    writeSync(1, `paused at ${point}\n`);
    process.kill(process.pid, 'SIGSTOP');
  },
  ship: async (params: ShipParams, context) => {
    if (crashAt === 'before-effect') process.kill(process.pid, 'SIGKILL');
    await engine.redis.hsetnx(shipmentsKey(prefix), context.operationId, params.key);
    if (crashAt === 'after-effect') process.kill(process.pid, 'SIGKILL');
    return { type: 'SHIPPED' };
  },
});

if (mode === 'worker') {
  await engine.startWorker([tickets], {
    recoveryIntervalMs: 200,
    recoveryGraceMs: 0,
    onEarlyTimer: (_machine, data, earlyByMs) => {
      console.log(`timer delivered early ${data.key} ${data.id} by ${earlyByMs} ms`);
    },
    onError: (error) => {
      console.log(`worker error ${String(error)}`);
    },
  });
  console.log('worker ready');
} else if (mode === 'send' && key !== undefined && eventJson !== undefined) {
  const { snapshot, emitted } = await tickets.send(key, JSON.parse(eventJson) as TicketEvent);
  console.log(`result ${JSON.stringify({ value: snapshot.value, emitted })}`);
  await engine.close();
} else {
  console.error('usage: toy-process.ts worker | send KEY EVENT_JSON');
  process.exit(2);
}
