/**
 * One command under the key's lock, with the toy ticket machine (no payment
 * code): the steps a hook sees, what the observer is told, the round trips a
 * command makes, and a write refused because the lease ran out meanwhile.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { EngineObserver, SpanAttributes } from '../../src/runtime/index.ts';
import type { HookInfo, HookPoint } from '../../src/runtime/testing.ts';
import { startTickets, storedTicket, type TicketsOptions } from '../support/engine-harness.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

describe('a command on the engine', () => {
  const redisUrl = inject('redisUrl');
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  async function start(prefix: string, options: TicketsOptions = {}) {
    const started = await startTickets(redisUrl, prefix, options);
    stops.push(() => started.engine.close());
    return started;
  }

  it('calls the hook after the read, after each write and after each effect, with what it did', async () => {
    const prefix = randomPrefix();
    const calls: [HookPoint, Omit<HookInfo, 'snapshot'> & { value?: unknown }][] = [];
    const { tickets } = await start(prefix, {
      hook: (point, { snapshot, ...info }) => {
        calls.push([point, snapshot === undefined ? info : { ...info, value: snapshot.value }]);
      },
    });
    await tickets.send('box', { type: 'SHIP' });
    expect(calls).toEqual([
      ['after-load', { key: 'box', command: 'SHIP' }],
      ['after-write', { key: 'box', command: 'SHIP', value: 'shipping', owes: true }],
      ['after-effect', { key: 'box', command: 'SHIP', effect: 'ship' }],
      ['after-write', { key: 'box', command: 'SHIP', value: 'shipped', owes: false }],
    ]);

    calls.length = 0;
    await tickets.recover('box');
    expect(calls).toEqual([['after-load', { key: 'box', command: 'recover' }]]);
  });

  it('tells the observer of state changes, effects and the wait for the lock', async () => {
    const prefix = randomPrefix();
    const seen: { what: string; [field: string]: unknown }[] = [];
    const observer: EngineObserver = {
      onTransition: (t) => seen.push({ what: 'transition', ...t }),
      onEffect: (e) => seen.push({ what: 'effect', ...e }),
      onLockWait: (w) => seen.push({ what: 'lock wait', ...w }),
    };
    const { tickets } = await start(prefix, { observer });
    const asked = performance.now();
    await tickets.send('box', { type: 'SHIP' });
    const took = performance.now() - asked;

    expect(seen.map(({ what }) => what)).toEqual([
      'lock wait',
      'transition',
      'effect',
      'transition',
    ]);
    const [wait, , effect] = seen;
    expect(wait).toMatchObject({ machine: 'ticket' });
    expect(wait?.ms).toBeGreaterThanOrEqual(0);
    expect(wait?.ms).toBeLessThanOrEqual(took);
    expect(seen[1]).toEqual({
      what: 'transition',
      machine: 'ticket',
      event: 'SHIP',
      from: 'open',
      to: 'shipping',
    });
    expect(effect).toMatchObject({ machine: 'ticket', name: 'ship', outcome: 'SHIPPED' });
    expect(effect?.durationMs).toBeGreaterThanOrEqual(0);
    expect(effect?.durationMs).toBeLessThanOrEqual(took);
    expect(seen[3]).toMatchObject({ event: 'SHIPPED', from: 'shipping', to: 'shipped' });

    // An event that keeps the state is no transition to report.
    seen.length = 0;
    await tickets.send('box', { type: 'CLOSE' });
    await tickets.send('other', { type: 'TICK' });
    expect(seen.filter(({ what }) => what === 'transition')).toEqual([
      { what: 'transition', machine: 'ticket', event: 'CLOSE', from: 'shipped', to: 'closed' },
    ]);
  });

  it("reports an effect's outcome as `none` without feedback and `error` when it throws", async () => {
    const outcomes: string[] = [];
    const annotated: SpanAttributes[] = [];
    let fail = false;
    const { tickets } = await start(randomPrefix(), {
      observer: {
        onEffect: ({ outcome }) => outcomes.push(outcome),
        span: (name, _attributes, work) =>
          work((more) => {
            if (name === 'engine.effect') annotated.push(more);
          }),
      },
      ship: () => (fail ? Promise.reject(new Error('carrier down')) : Promise.resolve(undefined)),
    });
    await tickets.send('quiet', { type: 'SHIP' });
    fail = true;
    await tickets.send('loud', { type: 'PING' });
    await expect(tickets.send('loud', { type: 'SHIP' })).rejects.toThrow('carrier down');
    expect(outcomes).toEqual(['none', 'error']);
    expect(annotated).toEqual([{ outcome: 'none' }]);
  });

  it('wraps the lock, each transition and each effect in a span with what it is about', async () => {
    const spans: { name: string; attributes: SpanAttributes }[] = [];
    const { tickets } = await start(randomPrefix(), {
      observer: {
        span: (name, attributes, work) => {
          const span = { name, attributes: { ...attributes } };
          spans.push(span);
          return work((more) => Object.assign(span.attributes, more));
        },
      },
    });
    await tickets.send('box', { type: 'SHIP' });
    expect(spans).toEqual([
      { name: 'engine.lock', attributes: { machine: 'ticket', command: 'SHIP' } },
      {
        name: 'engine.transition',
        attributes: { machine: 'ticket', event: 'SHIP', from: 'open', to: 'shipping' },
      },
      {
        name: 'engine.effect',
        attributes: { machine: 'ticket', effect: 'ship', outcome: 'SHIPPED' },
      },
      {
        name: 'engine.transition',
        attributes: { machine: 'ticket', event: 'SHIPPED', from: 'shipping', to: 'shipped' },
      },
    ]);
  });

  it('tells the observer of a command that failed on Redis, and of no other failure', async () => {
    const prefix = randomPrefix();
    const kinds: string[] = [];
    const { engine, tickets } = await start(prefix, {
      observer: {
        onRedisError: (kind) => kinds.push(kind),
        onTokenBusy: () => kinds.push('busy'),
      },
      ship: () => Promise.reject(new Error('carrier down')),
    });
    await expect(tickets.send('parcel', { type: 'SHIP' })).rejects.toThrow('carrier down');
    await engine.redis.hset(`${prefix}:ticket:{parcel}`, 's', '{');
    await expect(tickets.get('parcel')).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
    });
    expect(kinds).toEqual([]);

    // Another process whose observer takes no report of Redis failures.
    const quiet = await start(prefix, { observer: {} });

    // The store's identity is gone: Redis lost its data (a restart without it, say).
    await engine.redis.del(`${prefix}:store`);
    await expect(tickets.send('other', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'store_lost',
    });
    expect(kinds).toEqual(['lost']);
    await expect(quiet.tickets.send('other', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'store_lost',
    });
  });

  it('reports a command that gave up waiting for the lock, and how long it waited', async () => {
    const prefix = randomPrefix();
    const seen: { what: string; [field: string]: unknown }[] = [];
    const { engine, tickets } = await start(prefix, {
      lockWaitMs: 300,
      observer: {
        onLockWait: (w) => seen.push({ what: 'lock wait', ...w }),
        onTokenBusy: (b) => seen.push({ what: 'busy', ...b }),
      },
    });
    await engine.redis.set(`${prefix}:ticket:{held}:lock`, 'elsewhere', 'PX', 10_000);
    const asked = performance.now();
    await expect(tickets.send('held', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'busy',
    });
    const took = performance.now() - asked;
    expect(seen.map(({ what }) => what)).toEqual(['lock wait', 'busy']);
    expect(seen[0]?.ms).toBeGreaterThanOrEqual(250);
    expect(seen[0]?.ms).toBeLessThanOrEqual(took);
    expect(seen[1]).toEqual({ what: 'busy', machine: 'ticket' });
  });

  it('takes the lock and reads the record in one script, and writes it once', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await start(prefix);
    await tickets.send('once', { type: 'TICK' });
    await tickets.idle();

    const record = `${prefix}:ticket:{once}`;
    const monitor = await engine.redis.monitor();
    stops.push(() => {
      monitor.disconnect();
      return Promise.resolve();
    });
    const commands: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') commands.push(args);
    });
    await tickets.send('once', { type: 'TICK' });
    await tickets.idle();
    // The monitor has seen everything before this.
    const marker = `${prefix}:marker`;
    await engine.redis.get(marker);
    await waitFor(
      () => Promise.resolve(commands.some((args) => args.includes(marker)) ? true : undefined),
      { what: 'the monitor to catch up' },
    );

    const onRecord = commands.filter((args) => args.includes(record));
    // One script takes the lock and reads the record, then the write.
    expect(onRecord).toHaveLength(2);
    expect(onRecord[0]?.slice(2, 5)).toEqual(['2', record, `${record}:lock`]);
    // The lock is otherwise only released: no request of its own.
    const onLock = commands.filter((args) => args.includes(`${record}:lock`));
    expect(onLock).toHaveLength(2);
    expect(onLock[1]).not.toContain(record);
    // It arms and cancels no timer: nothing goes to the timer queue.
    expect(commands.filter((args) => args.some((arg) => arg.startsWith(`${prefix}:bull`)))).toEqual(
      [],
    );
    expect((await storedTicket(engine.redis, prefix, 'once')).v).toBe('2');
  });

  it('writes nothing for an event that changes nothing, taken under the lock', async () => {
    const prefix = randomPrefix();
    const first = await start(prefix);
    await first.tickets.send('still', { type: 'TICK' });
    const before = await storedTicket(first.engine.redis, prefix, 'still');
    const [listed] = (await first.tickets.list({ state: 'open' })).entries;

    // A process that has not seen the key takes the lock for it.
    const { tickets } = await start(prefix);
    const { emitted } = await tickets.send('still', { type: 'PING' });
    expect(emitted).toEqual([{ type: 'REPLY', status: 'open', ticks: 1 }]);
    expect((await tickets.sendIfExists('still', { type: 'RELEASE' }))?.snapshot.value).toBe('open');
    expect(await storedTicket(first.engine.redis, prefix, 'still')).toEqual(before);
    expect((await tickets.list({ state: 'open' })).entries).toEqual([listed]);
  });

  describe('whose lease runs out while another process writes the key', () => {
    /**
     * `times` commands of `one` lose their lease after the read: the lock is
     * gone and `other` ticks the key before `one` writes.
     */
    async function racing(prefix: string, times: number, observer?: EngineObserver) {
      const other = await start(prefix);
      let left = times;
      const stale: string[] = [];
      const one = await start(prefix, {
        observer: observer ?? { onStaleWrite: ({ machine }) => stale.push(machine) },
        hook: async (point, { key }) => {
          if (point !== 'after-load' || left === 0) return;
          left--;
          await other.engine.redis.del(`${prefix}:ticket:{${key}}:lock`);
          await other.tickets.send(key, { type: 'TICK' });
        },
      });
      return { one, other, stale };
    }

    it('has its write refused and starts again from a fresh read', async () => {
      const prefix = randomPrefix();
      const { one, stale } = await racing(prefix, 1);
      const { snapshot } = await one.tickets.send('fenced', { type: 'TICK' });
      // Its first write expected no record and was refused; the retry added its tick to the other's.
      expect(snapshot.context.ticks).toBe(2);
      expect(stale).toEqual(['ticket']);
      expect(await storedTicket(one.engine.redis, prefix, 'fenced')).toMatchObject({ v: '2' });
    });

    it('retries the same for an observer that takes no report of it', async () => {
      const prefix = randomPrefix();
      const { one } = await racing(prefix, 1, {});
      const { snapshot } = await one.tickets.send('unobserved', { type: 'TICK' });
      expect(snapshot.context.ticks).toBe(2);
    });

    it('gives up after three refused writes, leaving what the other process wrote', async () => {
      const prefix = randomPrefix();
      const { one, other, stale } = await racing(prefix, 5);
      await expect(one.tickets.send('contended', { type: 'TICK' })).rejects.toMatchObject({
        name: 'RuntimeError',
        code: 'stale_write',
      });
      expect(stale).toEqual(['ticket', 'ticket']);
      expect((await other.tickets.get('contended'))?.context.ticks).toBe(3);
    });
  });
});
