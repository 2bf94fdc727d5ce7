/**
 * The engine as real processes, with the toy ticket machine (no payment
 * code): a process killed (SIGKILL) between its write and its effect, or
 * between its effect and the write of the effect's answer, is finished by
 * the next access and by the recovery sweep; a process stopped past its
 * lock lease cannot overwrite what another wrote meanwhile; processes whose clocks are 10
 * minutes off (Debian's `faketime`) neither fire a delayed event early nor
 * write a due time or a retention deadline off Redis's clock.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/runtime/index.ts';
import {
  redisNow,
  shipmentsKey,
  startTickets,
  storedTicket,
  storedTimers,
  type Tickets,
} from '../support/engine-harness.ts';
import { spawnScript, type ServiceProcess } from '../support/processes.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { skewedClock } from '../support/skewed-clock.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

const SCRIPT = 'test/runtime/toy-process.ts';
const AHEAD = skewedClock('+10m');
const BEHIND = skewedClock('-10m');
const RETENTION_MS = 60_000;

describe('engine processes that crash or whose clocks are off', () => {
  let redis: TestRedisServer;
  let prefix: string;
  let engine: Engine;
  let tickets: Tickets;
  const processes: ServiceProcess[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
  });

  afterAll(async () => {
    await redis.destroy();
  });

  async function setUp() {
    prefix = randomPrefix();
    ({ engine, tickets } = await startTickets(redis.url, prefix, { retentionMs: RETENTION_MS }));
  }

  afterEach(async () => {
    for (const p of processes.splice(0)) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGKILL');
        await p.exited();
      }
    }
    await engine.close();
  });

  function run(args: string[], env: Record<string, string> = {}, wrapper: readonly string[] = []) {
    const p = spawnScript(SCRIPT, args, { REDIS_URL: redis.url, PREFIX: prefix, ...env }, wrapper);
    processes.push(p);
    return p;
  }

  async function crashWhileShipping(key: string, crashAt: 'before-effect' | 'after-effect') {
    const sender = run(['send', key, JSON.stringify({ type: 'SHIP' })], { CRASH_AT: crashAt });
    expect((await sender.exited()).signal).toBe('SIGKILL');
    expect((await tickets.get(key))?.value).toBe('shipping');
    expect(await engine.redis.zscore(`${prefix}:ticket:outbox`, key)).not.toBeNull();
  }

  const shipments = () => engine.redis.hgetall(shipmentsKey(prefix));

  it('runs the effect of a process killed between its write and the effect on the next access', async () => {
    await setUp();
    await crashWhileShipping('killed', 'before-effect');
    expect(await shipments()).toEqual({});

    const { snapshot } = await tickets.send('killed', { type: 'TICK' });
    expect(snapshot.value).toBe('shipped');
    const life = (await storedTicket(engine.redis, prefix, 'killed')).l ?? '';
    expect(await shipments()).toEqual({ [`killed:${life}:1:0`]: 'killed' });
    expect(await engine.redis.zscore(`${prefix}:ticket:outbox`, 'killed')).toBeNull();
  }, 30_000);

  it('replays an effect that ran before the kill with the same operation id, so it lands once', async () => {
    await setUp();
    await crashWhileShipping('ran', 'after-effect');
    const ran = await shipments();
    expect(Object.keys(ran)).toHaveLength(1);

    expect((await tickets.send('ran', { type: 'TICK' })).snapshot.value).toBe('shipped');
    expect(await shipments()).toEqual(ran);
  }, 30_000);

  it('runs the effect of a killed process from the recovery sweep of a worker process', async () => {
    await setUp();
    await crashWhileShipping('swept', 'before-effect');
    const worker = run(['worker']);
    await worker.waitForOutput('worker ready');
    await waitFor(
      async () => ((await tickets.get('swept'))?.value === 'shipped' ? true : undefined),
      { timeoutMs: 15_000, what: 'the sweep to finish the shipment' },
    );
    expect(Object.values(await shipments())).toEqual(['swept']);
  }, 30_000);

  it('refuses the write of a process whose lease ran out while it was stopped, and it starts again from a fresh read', async () => {
    await setUp();
    const stopped = run(['send', 'fenced', JSON.stringify({ type: 'TICK' })], {
      PAUSE_AT: 'after-load',
      LOCK_TTL_MS: '500',
    });
    await stopped.waitForOutput('paused at after-load');
    await waitFor(
      async () =>
        (await engine.redis.exists(`${prefix}:ticket:{fenced}:lock`)) === 0 ? true : undefined,
      { what: 'the stopped process to lose its lease' },
    );
    expect((await tickets.send('fenced', { type: 'TICK' })).snapshot.context.ticks).toBe(1);

    stopped.child.kill('SIGCONT');
    await stopped.waitForOutput('result');
    // Its first write expected the key without a record and was refused; the
    // retry read the other process's tick and added its own.
    expect(stopped.output()).toContain('"ticks":2');
    expect((await tickets.get('fenced'))?.context.ticks).toBe(2);
    expect((await storedTicket(engine.redis, prefix, 'fenced')).v).toBe('2');
  }, 30_000);

  it('does not fire a delayed event early when the only worker runs 10 minutes ahead, and fires it when due', async () => {
    await setUp();
    const worker = run(['worker'], {}, AHEAD);
    await worker.waitForOutput('worker ready');
    await tickets.send('ahead', { type: 'REMIND_IN', ms: 3_000 });
    const dueAt = (await storedTimers(engine.redis, prefix, 'ahead')).remind?.dueAt ?? 0;

    // By its own clock the job is due at once: the worker gets it and puts it back.
    await worker.waitForOutput('timer delivered early ahead remind');
    await waitFor(async () => ((await redisNow(engine.redis)) >= dueAt - 500 ? true : undefined), {
      what: 'half a second before the due time',
    });
    expect((await tickets.get('ahead'))?.context.reminders).toBe(0);

    await waitFor(
      async () => ((await tickets.get('ahead'))?.context.reminders === 1 ? true : undefined),
      { timeoutMs: 15_000, what: 'the reminder' },
    );
    expect(await redisNow(engine.redis)).toBeGreaterThanOrEqual(dueAt);
  }, 40_000);

  it('writes due times and the retention deadline on Redis clock from a process 10 minutes behind, so a closed key is not reopened', async () => {
    await setUp();
    const before = await redisNow(engine.redis);
    const remind = run(
      ['send', 'behind', JSON.stringify({ type: 'REMIND_IN', ms: 2_000 })],
      {},
      BEHIND,
    );
    await remind.waitForOutput('result');
    const after = await redisNow(engine.redis);
    const dueAt = (await storedTimers(engine.redis, prefix, 'behind')).remind?.dueAt ?? 0;
    expect(dueAt).toBeGreaterThanOrEqual(before + 2_000);
    expect(dueAt).toBeLessThanOrEqual(after + 2_000);
    // The input's time is Redis's too.
    const openedAt = (await tickets.get('behind'))?.context.openedAt ?? 0;
    expect(openedAt).toBeGreaterThanOrEqual(before);

    const close = run(['send', 'behind', JSON.stringify({ type: 'CLOSE' })], {}, BEHIND);
    await close.waitForOutput('result');
    const ttl = await engine.redis.pttl(`${prefix}:ticket:{behind}`);
    expect(ttl).toBeGreaterThan(RETENTION_MS - 10_000);
    expect(ttl).toBeLessThanOrEqual(RETENTION_MS);

    // Still closed: a SHIP cannot start a new life and ship.
    const ship = run(['send', 'behind', JSON.stringify({ type: 'SHIP' })], {}, BEHIND);
    await ship.waitForOutput('result');
    expect(ship.output()).toContain('"value":"closed"');
    expect(await shipments()).toEqual({});
  }, 40_000);
});
