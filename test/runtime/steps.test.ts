/**
 * What one step of a machine owes when it does several things at once, with
 * the toy alarm machine (no payment code): the timers stored and armed, the
 * effects run, and the steps that write nothing.
 */
import { Queue } from 'bullmq';
import { Redis as IORedis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { durableMachine, type DurableActors } from '../../src/runtime/index.ts';
import { timerQueueName, type TimerJobData } from '../../src/runtime/testing.ts';
import { redisNow, startTickets } from '../support/engine-harness.ts';
import { randomPrefix } from '../support/service-harness.ts';
import { ALARM_MS, alarmMachine } from './alarm.machine.ts';

describe('one step that owes several things on the engine', () => {
  const redisUrl = inject('redisUrl');
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  async function setUp() {
    const prefix = randomPrefix();
    const { engine } = await startTickets(redisUrl, prefix);
    stops.push(() => engine.close());
    const notified: string[] = [];
    const alarms: DurableActors<typeof alarmMachine> = durableMachine(engine, {
      name: 'alarm',
      machine: alarmMachine,
      version: 1,
      input: () => undefined,
      effects: {
        notify: (_params: unknown, { key }) => {
          notified.push(key);
          return Promise.resolve(undefined);
        },
      },
      finalStateRetentionMs: 60_000,
    });
    const connection = new IORedis(redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue<TimerJobData>(timerQueueName('alarm'), {
      connection,
      prefix: `${prefix}:bull`,
    });
    stops.push(async () => {
      await queue.close();
      await connection.quit();
    });
    /** Sends, then waits for the timers armed after the answer. */
    const send = async (key: string, event: Parameters<typeof alarms.send>[1]) => {
      const result = await alarms.send(key, event);
      await alarms.idle();
      return result;
    };
    const stored = (key: string) => engine.redis.hgetall(`${prefix}:alarm:{${key}}`);
    const jobs = async (key: string) =>
      (await queue.getDelayed()).map((job) => job.data).filter((data) => data.key === key);
    return { engine, alarms, notified, send, stored, jobs };
  }

  function timersOf(record: Record<string, string>): Record<string, { dueAt: number }> {
    return record.t === undefined
      ? {}
      : (JSON.parse(record.t) as Record<string, { seq: number; dueAt: number }>);
  }

  it('arms a timer set twice in one step once, for the later time', async () => {
    const { engine, send, stored, jobs } = await setUp();
    const before = await redisNow(engine.redis);
    await send('twice', { type: 'SET_TWICE' });
    const after = await redisNow(engine.redis);
    const record = await stored('twice');
    const { ring } = timersOf(record);
    expect(Object.keys(timersOf(record))).toEqual(['ring']);
    expect(ring?.dueAt).toBeGreaterThanOrEqual(before + 2 * ALARM_MS);
    expect(ring?.dueAt).toBeLessThanOrEqual(after + 2 * ALARM_MS);
    const armed = await jobs('twice');
    expect(armed.map((job) => [job.id, job.seq, job.dueAt])).toEqual([['ring', 1, ring?.dueAt]]);
    expect(record.o).toBeUndefined();
  });

  it('names a timer raised without an id after the write and its place in the step', async () => {
    const { send, stored, jobs } = await setUp();
    await send('unnamed', { type: 'SET' });
    await send('unnamed', { type: 'SET_UNNAMED' });
    // Version 2 wrote it, as the step's first action.
    expect(Object.keys(timersOf(await stored('unnamed'))).sort()).toEqual(['2.0', 'ring']);
    expect((await jobs('unnamed')).map((job) => job.id).sort()).toEqual(['2.0', 'ring']);
  });

  it('keeps nothing of a timer set and taken back in the same step', async () => {
    const { send, stored, jobs } = await setUp();
    await send('undone', { type: 'SET_AND_CANCEL' });
    const record = await stored('undone');
    expect(record.v).toBe('1');
    expect(record.t).toBeUndefined();
    expect(record.o).toBeUndefined();
    expect(await jobs('undone')).toEqual([]);
  });

  it('keeps the effect and the timer a step still owes after it cancelled another', async () => {
    const { send, notified, jobs, stored } = await setUp();
    await send('kept', { type: 'SET_BOTH_KEEP_ONE' });
    expect(notified).toEqual(['kept']);
    expect(Object.keys(timersOf(await stored('kept')))).toEqual(['snooze']);
    expect((await jobs('kept')).map((job) => job.id)).toEqual(['snooze']);
  });

  it('runs an effect owed beside a timer, and arms the timer', async () => {
    const { send, notified, jobs, stored } = await setUp();
    await send('both', { type: 'NOTIFY_AND_SET' });
    expect(notified).toEqual(['both']);
    expect((await jobs('both')).map((job) => job.id)).toEqual(['ring']);
    expect((await stored('both')).o).toBeUndefined();
  });

  it('writes and runs an effect that is all a step changes', async () => {
    const { send, notified, stored } = await setUp();
    await send('again', { type: 'NOTIFY' });
    await send('again', { type: 'NOTIFY' });
    expect(notified).toEqual(['again', 'again']);
    expect((await stored('again')).v).toBe('2');
  });

  it('writes nothing for an action of the machine that no handler runs', async () => {
    const { alarms, send, stored } = await setUp();
    await send('noted', { type: 'NOTE' });
    const first = await stored('noted');
    expect(first.v).toBe('1');
    await send('noted', { type: 'NOTE' });
    expect((await alarms.sendIfExists('noted', { type: 'NOTE' }))?.snapshot.value).toBe('idle');
    expect(await stored('noted')).toEqual(first);
  });

  it('handles a raise without a delay inside the step, arming nothing', async () => {
    const { send, stored, jobs } = await setUp();
    const { snapshot } = await send('now', { type: 'RING_NOW' });
    expect(snapshot.context.rings).toBe(1);
    expect((await stored('now')).t).toBeUndefined();
    expect(await jobs('now')).toEqual([]);
  });

  it('keeps no timer in a final state, not even one set by the step that reached it', async () => {
    const { alarms, send, stored, jobs, notified } = await setUp();
    await send('stopped', { type: 'SET' });
    const { snapshot } = await send('stopped', { type: 'STOP' });
    expect(snapshot.status).toBe('done');
    // The effect of that step still runs.
    expect(notified).toEqual(['stopped']);
    const record = await stored('stopped');
    expect(record.t).toBeUndefined();
    expect(record.o).toBeUndefined();
    // The earlier job stays queued (delivered, it finds a final snapshot); none for the new one.
    expect((await jobs('stopped')).map((job) => job.id)).toEqual(['ring']);

    // Nothing moves a final snapshot: it is not written again.
    expect((await alarms.sendIfExists('stopped', { type: 'SET' }))?.snapshot.status).toBe('done');
    expect(await stored('stopped')).toEqual(record);
  });
});
