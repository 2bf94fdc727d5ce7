/**
 * Delayed events of a toy machine (no payment code) on the engine: `raise`
 * with a delay and an id, `cancel`, a re-armed id, `after`, and a timer of an
 * earlier life of the key, against the shared test Redis.
 */
import type { Queue } from 'bullmq';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import type { Engine, EngineWorker } from '../../src/runtime/index.ts';
import type { TimerJobData } from '../../src/runtime/testing.ts';
import {
  delayedTimersOf,
  redisNow,
  startTickets,
  storedTicket,
  storedTimers,
  ticketTimerQueue,
  type Tickets,
} from '../support/engine-harness.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

describe('delayed events on the engine', () => {
  const redisUrl = inject('redisUrl');
  let prefix: string;
  let engine: Engine;
  let tickets: Tickets;
  let worker: EngineWorker;
  let queue: Queue<TimerJobData>;
  let closeQueue: () => Promise<void>;

  beforeEach(async () => {
    prefix = randomPrefix();
    ({ engine, tickets } = await startTickets(redisUrl, prefix, { retentionMs: 300 }));
    worker = await engine.startWorker([tickets], { recoveryIntervalMs: 60_000 });
    ({ queue, close: closeQueue } = ticketTimerQueue(redisUrl, prefix));
  });

  afterEach(async () => {
    await worker.stop();
    await engine.close();
    await closeQueue();
  });

  const reminders = async (key: string) => (await tickets.get(key))?.context.reminders;
  /** Sends, then waits for the timers armed after the answer. */
  const send: Tickets['send'] = async (key, event) => {
    const result = await tickets.send(key, event);
    await tickets.idle();
    return result;
  };

  it('delivers an event raised with a delay once it is due on Redis clock', async () => {
    const { snapshot } = await send('late', { type: 'REMIND_IN', ms: 300 });
    expect(snapshot.context.reminders).toBe(0);
    const { remind } = await storedTimers(engine.redis, prefix, 'late');
    expect(remind).toBeDefined();
    const dueAt = remind?.dueAt ?? 0;

    await waitFor(async () => ((await reminders('late')) === 1 ? true : undefined), {
      what: 'the reminder',
    });
    expect(await redisNow(engine.redis)).toBeGreaterThanOrEqual(dueAt);
    // A timer that fired is no longer live.
    expect(await storedTimers(engine.redis, prefix, 'late')).toEqual({});
  });

  it('changes nothing when a timer the machine cancelled is delivered', async () => {
    await send('cancelled', { type: 'REMIND_IN', ms: 60_000 });
    const [armed] = await delayedTimersOf(queue, 'cancelled');
    expect(armed?.id).toBe('remind');

    await send('cancelled', { type: 'CANCEL_REMINDER' });
    expect(await storedTimers(engine.redis, prefix, 'cancelled')).toEqual({});
    // Its job is removed; should a delivery be on its way anyway, it is inert.
    expect(await delayedTimersOf(queue, 'cancelled')).toEqual([]);
    const before = await storedTicket(engine.redis, prefix, 'cancelled');
    await tickets.fire({ ...(armed as TimerJobData), dueAt: 0 });
    expect(await reminders('cancelled')).toBe(0);
    expect(await storedTicket(engine.redis, prefix, 'cancelled')).toEqual(before);
  });

  it('lets a timer re-armed with the same id supersede the earlier one', async () => {
    // Far enough apart that a loaded machine still finds both jobs delayed.
    await send('again', { type: 'REMIND_IN', ms: 1_000 });
    await send('again', { type: 'REMIND_IN', ms: 2_500 });
    const { remind } = await storedTimers(engine.redis, prefix, 'again');
    const jobs = await delayedTimersOf(queue, 'again');
    expect(jobs.map((job) => job.seq).sort()).toEqual([1, 2]);

    // The first job is delivered at its due time and changes nothing.
    await waitFor(
      async () =>
        (await delayedTimersOf(queue, 'again')).some((job) => job.seq === 1) ? undefined : true,
      { what: 'the first timer to be delivered' },
    );
    expect(await reminders('again')).toBe(0);
    // The second fires once, at its own due time.
    await waitFor(async () => ((await reminders('again')) === 1 ? true : undefined), {
      what: 'the re-armed reminder',
    });
    expect(await redisNow(engine.redis)).toBeGreaterThanOrEqual(remind?.dueAt ?? 0);
  });

  it('changes nothing when a timer of an earlier life of the key is delivered', async () => {
    await send('reborn', { type: 'REMIND_IN', ms: 60_000 });
    const [earlier] = await delayedTimersOf(queue, 'reborn');
    const firstLife = (await storedTicket(engine.redis, prefix, 'reborn')).l;
    await send('reborn', { type: 'CLOSE' });
    await waitFor(async () => ((await tickets.get('reborn')) === null ? true : undefined), {
      what: 'the closed ticket to be removed after its retention',
    });

    // A new life arms the same timer id with the same sequence number.
    await send('reborn', { type: 'REMIND_IN', ms: 60_000 });
    const secondLife = await storedTicket(engine.redis, prefix, 'reborn');
    expect(secondLife.l).not.toBe(firstLife);
    const { remind } = await storedTimers(engine.redis, prefix, 'reborn');
    expect(earlier?.seq).toBe(remind?.seq);

    await tickets.fire({ ...(earlier as TimerJobData), dueAt: 0 });
    expect(await reminders('reborn')).toBe(0);
    expect(await storedTicket(engine.redis, prefix, 'reborn')).toEqual(secondLife);
  });

  it('forgets a timer whose event the state it finds ignores, once delivered', async () => {
    await send('ignored', { type: 'REMIND_IN', ms: 60_000 });
    const [armed] = await delayedTimersOf(queue, 'ignored');
    // Held, the ticket ignores REMIND.
    await send('ignored', { type: 'HOLD' });
    await tickets.fire({ ...(armed as TimerJobData), dueAt: 0 });
    expect(await reminders('ignored')).toBe(0);
    expect(Object.keys(await storedTimers(engine.redis, prefix, 'ignored'))).not.toContain(
      'remind',
    );
  });

  it('counts the timer jobs by state', async () => {
    await send('first', { type: 'REMIND_IN', ms: 60_000 });
    await send('second', { type: 'REMIND_IN', ms: 60_000 });
    expect(await tickets.timerJobCounts()).toEqual({
      waiting: 0,
      delayed: 2,
      active: 0,
      failed: 0,
    });
  });

  it('fires `after` delays, and drops them when the state was left first', async () => {
    await send('hold', { type: 'HOLD' });
    await waitFor(async () => ((await tickets.get('hold'))?.value === 'open' ? true : undefined), {
      what: 'the hold to end after its delay',
    });

    await send('released', { type: 'HOLD' });
    const [first] = await delayedTimersOf(queue, 'released');
    expect(first?.event.type).toMatch(/^xstate\.after\./);
    await send('released', { type: 'RELEASE' });
    await send('released', { type: 'HOLD' });
    // The first hold's timer, delivered during the second hold, does not end it.
    await tickets.fire({ ...(first as TimerJobData), dueAt: 0 });
    expect((await tickets.get('released'))?.value).toBe('held');
  });
});
