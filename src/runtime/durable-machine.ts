import { randomUUID } from 'node:crypto';
import type {
  AnyMachineSnapshot,
  AnyStateMachine,
  EmittedFrom,
  EventFromLogic,
  EventObject,
  InputFrom,
  SnapshotFrom,
  StateValue,
} from 'xstate';
import { StaleWriteError, StoredDataError, TokenBusyError } from '../errors.ts';
import type { Engine } from './engine.ts';
import { inSpan, redisErrorKind } from './engine-observer.ts';
import { MachineSteps, type CollectedAction } from './machine-steps.ts';
import { persistedSnapshot } from './persisted-snapshot.ts';
import { RedlockKeyLock, type LockRequest } from './redis/key-lock.ts';
import type { PartitionOf, Partitioning } from './redis/partitions.ts';
import {
  machineKeys,
  RecordStore,
  type Expected,
  type MachineKeys,
  type OwedAction,
  type StoredRecord,
  type Timers,
} from './redis/record-store.ts';
import {
  indexState,
  StateIndex,
  type ListOptions,
  type ListPage,
  type OwedEntry,
} from './redis/state-index.ts';
import { TimerQueue, timerJobId, type TimerJobData } from './redis/timer-queue.ts';
import { UnchangingEvents } from './unchanging-events.ts';

/**
 * Any XState v5 machine, one durable actor per string key.
 *
 * `send(key, event)`: lock the key (Redlock's lock; one script takes it and,
 * only then, reads the record: one round trip for both) → run what the last write owed and
 * a crash left undone → `transition` → persist (compare-and-set on the
 * version, the owed actions and the key's outbox entry in the same script) →
 * run the owed actions → clear them (fenced by the version) → unlock. The
 * caller is answered as soon as the last write is done: when that write owes
 * only timers (no handler, so no event can follow), they are armed and
 * cleared after the answer, and the lock is released after it, still in
 * order with the next command on the key (`idle()` waits for all of it).
 *
 * Owed actions are the machine's named actions that have a handler in
 * `effects`, and its delayed events (`raise(e, { delay, id })`, `after`).
 * What is stored is exactly what is replayed: the engine never recomputes
 * them from the machine. A handler gets an operation id that is the same on
 * every replay of the same stored action and must be idempotent by it.
 *
 * An event that changes nothing in the state this process last left the key
 * in (a repeated request answered from the record) is answered from one read
 * without the lock, if that read's own transition confirms it: nothing is
 * written, so the lock would only order it among requests it need not wait
 * for. A record that owes actions always takes the locked path.
 *
 * Time: the engine adds nothing to events. The machine gets Redis's time
 * through `input(key, now)` and through `send(key, (now) => event)`; `now`
 * is always RedisClock's (observed by the locked read of this request).
 */

export interface EffectContext {
  readonly key: string;
  /** Stable across replays of one stored action: `${key}:${lifeId}:${version}:${index}`. */
  readonly operationId: string;
  /** Redis's time, epoch ms. */
  now(): number;
}

/**
 * Runs one effect. Params are the action's resolved params, as stored (JSON).
 * A returned event is sent to the same key through the same locked path.
 */
export type EffectHandler<TEvent extends EventObject> = (
  params: never,
  context: EffectContext,
) => Promise<TEvent | undefined>;

/** Named steps of a command where `hook` is called (see DurableMachineConfig.hook). */
export type HookPoint = 'after-load' | 'after-write' | 'after-effect';

export interface HookInfo {
  readonly key: string;
  /** The command's event type, or `recover` for the sweep. */
  readonly command: string;
  /** After a write: the snapshot written, and whether the write owes actions. */
  readonly snapshot?: AnyMachineSnapshot;
  readonly owes?: boolean;
  /** After an effect: the action's type. */
  readonly effect?: string;
}

export interface DurableMachineConfig<TMachine extends AnyStateMachine> {
  /** Names the machine's keys and queue: letters, digits and '-'. */
  readonly name: string;
  readonly machine: TMachine;
  /** Stored beside every snapshot; bump it when the snapshot's meaning changes. */
  readonly version: number;
  /** Turns a persisted snapshot of an older version into one of `version`. */
  readonly migrate?: (snapshot: unknown, fromVersion: number) => unknown;
  /**
   * Reads a record an earlier store format wrote (one without a machine
   * name): what it left owed and the timers it had armed, in the engine's
   * terms. Its snapshot then loads as any other of `machineVersion`. Without
   * it such a record is refused.
   */
  readonly adoptLegacy?: (record: LegacyRecord) => {
    readonly owed: readonly OwedAction[];
    readonly timers: Timers;
  };
  /** The input of a key's first snapshot; `now` is Redis's time, `lifeId` the new record's. */
  readonly input: (key: string, now: number, lifeId: string) => InputFrom<TMachine>;
  /**
   * The event a timer delivers, given Redis's time of the delivery (e.g. to
   * stamp it); by default the event as raised.
   */
  readonly timerEvent?: (
    event: EventFromLogic<NoInfer<TMachine>>,
    now: number,
  ) => EventFromLogic<NoInfer<TMachine>>;
  /** Where the records live; by default `machineKeys(prefix, name)`. */
  readonly keys?: (prefix: string) => MachineKeys;
  /**
   * A partition of the key space (e.g. by tenant): the partition of a key,
   * `null` for none. The index then also keeps each partition's keys by
   * state and its keys that owe actions, so `counts`, `list` and `stuck`
   * of one partition cost what its own keys do (see redis/partitions.ts).
   * It must give a key the same partition forever; names: 1-200
   * characters, none of `{ } :`.
   */
  readonly partition?: PartitionOf;
  readonly effects?: Readonly<Record<string, EffectHandler<EventFromLogic<NoInfer<TMachine>>>>>;
  /**
   * A record in a final state is removed this long after it got there; a
   * function reads it off the final snapshot (e.g. a period fixed when the
   * key's record was created).
   */
  readonly finalStateRetentionMs: number | ((snapshot: SnapshotFrom<TMachine>) => number);
  /**
   * Called at named steps of every command, holding the lock (instrumentation,
   * and fault injection in tests: a hook may stop or kill the process there).
   */
  readonly hook?: (point: HookPoint, info: HookInfo) => Promise<void> | void;
}

/** A record of an earlier store format, as `adoptLegacy` gets it. */
export interface LegacyRecord {
  readonly key: string;
  readonly lifeId: string;
  readonly machineVersion: number;
  /** The persisted snapshot, as stored (before any migration). */
  readonly snapshot: unknown;
  /** That format's owed marker (its `o` field), `null` when absent. */
  readonly owed: string | null;
}

export interface SendResult<TMachine extends AnyStateMachine> {
  readonly snapshot: SnapshotFrom<TMachine>;
  /** What the machine emitted (`emit(...)`) for this event and the feedback of its effects. */
  readonly emitted: readonly EmittedFrom<TMachine>[];
}

/** What the worker needs of a durable machine, whatever its type. */
export interface WorkerTarget {
  readonly name: string;
  fire(data: TimerJobData): Promise<void>;
  recover(key: string): Promise<void>;
  listOwed(before: number, limit: number): Promise<string[]>;
  /** Removes up to `limit` keys past their removal deadline; returns how many. */
  removeDue(limit: number): Promise<number>;
  /** Keys whose earliest live timer was due before `before` (Redis's clock). */
  listDueTimers(before: number, limit: number): Promise<string[]>;
  /** Arms again `key`'s timers due before `before` whose job is gone; how many it did. */
  rearmOverdue(key: string, before: number): Promise<number>;
  /** Keys noted as holding a record that cannot be read. */
  listUnreadable(limit: number): Promise<string[]>;
  /** Whether `key` still holds one; forgets the note when not. */
  stillUnreadable(key: string): Promise<boolean>;
}

const STALE_WRITE_RETRIES = 3;

/** How many keys a process remembers the last state of (see send); the oldest go first. */
const SETTLED_KEYS_KEPT = 10_000;

const NAME_PATTERN = /^[a-z0-9][a-z0-9-]*$/i;

interface Cursor {
  /** What the next write must find; `null`: no record. */
  readonly expected: Expected;
  readonly lifeId: string;
  readonly snapshot: AnyMachineSnapshot | null;
  readonly timers: Timers;
  /** The timers changed without a write yet. */
  readonly dirty: boolean;
}

/** One command under the lock. */
interface Run {
  readonly key: string;
  readonly command: string;
  /** Collected for the caller; a replay of an earlier command's actions collects nothing. */
  readonly emitted: EventObject[];
  /** The version whose owed actions ran and are still to be cleared. */
  clear: number | null;
  /**
   * The timers the command's last write owes, armed after the caller has its
   * answer (they are stored as owed: should the process die first, the next
   * access or the sweep arms them).
   */
  deferred: { readonly owed: readonly OwedTimer[]; readonly version: number } | null;
}

type OwedTimer = Extract<OwedAction, { kind: 'timer' }>;

export class DurableActors<TMachine extends AnyStateMachine> implements WorkerTarget {
  readonly name: string;
  private readonly store: RecordStore;
  private readonly index: StateIndex;
  private readonly lock: RedlockKeyLock;
  private readonly timers: TimerQueue;
  private readonly steps: MachineSteps<TMachine>;
  private readonly effects: Readonly<Record<string, EffectHandler<EventFromLogic<TMachine>>>>;
  private readonly unchanging: UnchangingEvents;
  /** The state (UnchangingEvents.stateKey) this process last left each key in: only a hint. */
  private readonly settled = new Map<string, string>();

  constructor(
    private readonly engine: Engine,
    private readonly config: DurableMachineConfig<TMachine>,
  ) {
    if (!NAME_PATTERN.test(config.name)) {
      throw new Error(`machine name "${config.name}" must be letters, digits and '-'`);
    }
    this.name = config.name;
    const keys = config.keys?.(engine.prefix) ?? machineKeys(engine.prefix, config.name);
    let partitioning: Partitioning | null = null;
    if (config.partition !== undefined) {
      if (keys.partitions === undefined) {
        throw new Error(`machine "${config.name}" has a partition but its keys name no partitions`);
      }
      partitioning = { of: config.partition, base: keys.partitions };
    }
    this.store = new RecordStore(
      engine.redis,
      keys,
      engine.identity,
      engine.clock,
      engine.replicas,
      partitioning,
    );
    this.index = new StateIndex(engine.redis, keys, topLevelStates(config.machine), partitioning);
    this.lock = new RedlockKeyLock(engine.redis, {
      ttlMs: engine.lockTtlMs,
      waitMs: engine.lockWaitMs,
      resource: keys.lock,
    });
    this.timers = new TimerQueue({
      machine: config.name,
      connection: engine.queueConnection,
      prefix: engine.queuePrefix,
      prefixes: engine.queuePrefixes,
      now: () => engine.clock.now(),
    });
    engine.onClose(async () => {
      // Timers armed after an answer go out before the queue closes.
      await this.idle();
      await this.timers.close();
    });
    this.steps = new MachineSteps(config.machine);
    this.effects = config.effects ?? {};
    this.unchanging = new UnchangingEvents(config.machine);
  }

  /**
   * Sends `event` to the actor of `key`, creating it (from `input`) if it has
   * no record. A function is called with Redis's time once the lock is held
   * (and once before, to learn the event's type: it must be pure).
   */
  async send(
    key: string,
    event: EventFromLogic<TMachine> | ((now: number) => EventFromLogic<TMachine>),
  ): Promise<SendResult<TMachine>> {
    // A function is called again once the lock is held: its type names the command.
    const early = isEventFactory(event) ? event(this.engine.clock.now()) : event;
    const command = (early as EventObject).type;
    const lastSeen = this.settled.get(key);
    if (lastSeen !== undefined && this.unchanging.has(lastSeen, command)) {
      const answered = await this.observeFailure(this.answerWithoutLock(key, early));
      if (answered !== null) return answered;
    }
    const result = await this.locked(key, command, (cursor, run) => {
      const resolved = isEventFactory(event) ? event(this.engine.clock.now()) : event;
      return this.apply(run, cursor, resolved, true);
    });
    if (result.snapshot === null) throw new Error(`no snapshot for key ${key} after an event`);
    this.noteSettled(key, UnchangingEvents.stateKey(result.snapshot.value as StateValue));
    return {
      snapshot: result.snapshot as SnapshotFrom<TMachine>,
      emitted: result.emitted as EmittedFrom<TMachine>[],
    };
  }

  /**
   * Sends `event` only to an actor that has a record: a key without one is
   * left without one and the answer is `null`.
   */
  async sendIfExists(
    key: string,
    event: EventFromLogic<TMachine> | ((now: number) => EventFromLogic<TMachine>),
  ): Promise<SendResult<TMachine> | null> {
    const early = isEventFactory(event) ? event(this.engine.clock.now()) : event;
    const result = await this.locked(key, (early as EventObject).type, (cursor, run) => {
      if (cursor.snapshot === null) return Promise.resolve(cursor);
      const resolved = isEventFactory(event) ? event(this.engine.clock.now()) : event;
      return this.apply(run, cursor, resolved, true);
    });
    if (result.snapshot === null) return null;
    return {
      snapshot: result.snapshot as SnapshotFrom<TMachine>,
      emitted: result.emitted as EmittedFrom<TMachine>[],
    };
  }

  /**
   * Resolves once the work this process began on this machine's keys is done
   * (or after the lock's TTL): `send` answers as soon as its outcome is
   * known, and the timers its last write armed are added to the queue right
   * after, still holding the key's lock.
   */
  idle(): Promise<void> {
    return this.lock.idle(this.engine.lockTtlMs);
  }

  /** The stored snapshot, as it is; takes no lock. `null`: no record. */
  async get(key: string): Promise<SnapshotFrom<TMachine> | null> {
    const loaded = await this.observeFailure(this.loadReadable(key));
    return loaded === null ? null : (loaded.snapshot as SnapshotFrom<TMachine>);
  }

  /** The record and its snapshot, read without the lock; one that cannot be read is noted. */
  private loadReadable(
    key: string,
  ): Promise<{ record: StoredRecord; snapshot: AnyMachineSnapshot } | null> {
    return this.readable(key, async () => {
      const record = this.adopt(key, await this.store.load(key));
      return record === null ? null : { record, snapshot: this.resolve(key, record) };
    });
  }

  /**
   * Runs a read of `key`'s record. One that cannot be read is noted in the
   * machine's unreadable set (listed by `stuck`, counted by `counts`) before
   * the error goes on: it is kept for an operator, never taken for no record.
   */
  private async readable<T>(key: string, read: () => T | Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof StoredDataError) {
        await this.store.noteUnreadable(key, true).catch(() => undefined);
      }
      throw error;
    }
  }

  /** See WorkerTarget.rearmOverdue. */
  async rearmOverdue(key: string, before: number): Promise<number> {
    const loaded = await this.loadReadable(key);
    const timers = Object.entries(loaded?.record.timers ?? {});
    if (loaded === null || timers.length === 0) {
      await this.store.settleTimers(key);
      return 0;
    }
    let rearmed = 0;
    for (const [id, timer] of timers) {
      // A timer of a record from before events were kept with timers is left to its job.
      if (timer.dueAt > before || timer.event === undefined) continue;
      const data = { key, lifeId: loaded.record.lifeId, id, ...timer, event: timer.event };
      if (await this.timers.ensure(data)) rearmed++;
    }
    return rearmed;
  }

  listDueTimers(before: number, limit: number): Promise<string[]> {
    return this.store.listDueTimers(before, limit);
  }

  listUnreadable(limit: number): Promise<string[]> {
    return this.store.listUnreadable(limit);
  }

  /** See WorkerTarget.stillUnreadable. */
  async stillUnreadable(key: string): Promise<boolean> {
    try {
      await this.loadReadable(key);
    } catch (error) {
      if (error instanceof StoredDataError) return true;
      throw error;
    }
    await this.store.noteUnreadable(key, false);
    return false;
  }

  /** Runs what a crashed command left owed for `key` (the sweep calls it). */
  async recover(key: string): Promise<void> {
    await this.locked(key, 'recover', (cursor) => Promise.resolve(cursor));
    // Whatever was owed ran (or the record is gone): the entry has done its job.
    await this.store.settleOutbox(key);
  }

  /**
   * Keys in `state` (a top-level state), of one partition if given, newest
   * write first; takes no lock.
   */
  list(options: ListOptions): Promise<ListPage> {
    return this.index.list(options);
  }

  /**
   * How many keys (of one partition, if given) are in each top-level state,
   * and `unreadable`: how many hold a record that cannot be read (counted in
   * their state too); takes no lock.
   */
  counts(partition?: string): Promise<Record<string, number>> {
    return this.index.counts(partition);
  }

  /**
   * Keys (of one partition, if given) that need the worker or an operator,
   * oldest first: owed actions written more than `olderThanMs` ago (Redis's
   * clock), a live timer due more than that ago (its job may be gone: the
   * sweep re-arms it), and every record that cannot be read.
   */
  stuck(olderThanMs: number, limit = 100, partition?: string): Promise<readonly OwedEntry[]> {
    return this.index.stuck(this.engine.clock.now() - olderThanMs, limit, partition);
  }

  /**
   * Puts the keys the index held before the machine's keys were partitioned
   * into their partitions (the first read by partition does it once per
   * store, see StateIndex.backfill); returns how many it placed.
   */
  backfillPartitions(): Promise<number> {
    return this.index.backfill();
  }

  /** A timer's job was delivered at or after its due time. */
  async fire(data: TimerJobData): Promise<void> {
    await this.locked(data.key, data.event.type, (cursor, run) => {
      // Another life of the key, a final snapshot, a cancelled timer or one
      // re-armed since (a newer seq): nothing to do.
      if (
        cursor.snapshot === null ||
        cursor.lifeId !== data.lifeId ||
        cursor.snapshot.status !== 'active' ||
        cursor.timers[data.id]?.seq !== data.seq
      ) {
        return Promise.resolve(cursor);
      }
      const { [data.id]: _fired, ...timers } = cursor.timers;
      const raised = data.event as EventFromLogic<TMachine>;
      const event = this.config.timerEvent?.(raised, this.engine.clock.now()) ?? raised;
      const fired: Cursor = { ...cursor, timers, dirty: true };
      // Stryker disable next-line BooleanLiteral: nobody waits for what a timer's event emitted
      return this.apply(run, fired, event, false);
    });
  }

  /**
   * The answer of an event that changes nothing, from one read without the
   * lock; `null`: take the locked path (no record, owed actions, or the
   * event changes something after all).
   */
  private async answerWithoutLock(
    key: string,
    event: EventFromLogic<TMachine>,
  ): Promise<SendResult<TMachine> | null> {
    const loaded = await this.loadReadable(key);
    if (loaded === null || loaded.record.owed.length > 0) return null;
    const { snapshot } = loaded;
    const step = this.steps.transition(snapshot, event);
    if (!sameState(snapshot, step.snapshot)) return null;
    const emitted: EventObject[] = [];
    for (const action of step.actions) {
      if (action.type !== 'xstate.emit') return null;
      emitted.push((action.params as { event: EventObject }).event);
    }
    return {
      snapshot: snapshot as SnapshotFrom<TMachine>,
      emitted: emitted as EmittedFrom<TMachine>[],
    };
  }

  private noteSettled(key: string, stateKey: string): void {
    this.settled.delete(key);
    this.settled.set(key, stateKey);
    if (this.settled.size <= SETTLED_KEYS_KEPT) return;
    // Past the bound, the oldest tenth goes in one pass: a Map's iterator
    // walks over the slots of deleted entries, so taking out one key per
    // insert costs a walk over thousands of them each time.
    let forget = this.settled.size - SETTLED_KEYS_KEPT * 0.9;
    for (const oldest of this.settled.keys()) {
      if (forget-- <= 0) break;
      this.settled.delete(oldest);
    }
  }

  listOwed(before: number, limit: number): Promise<string[]> {
    return this.store.listOwed(before, limit);
  }

  removeDue(limit: number): Promise<number> {
    return this.index.removeDue(limit);
  }

  /** `lockedAttempts`, observed: a span, the lock wait if it ran out, Redis failures. */
  private async locked(
    key: string,
    command: string,
    body: (cursor: Cursor, run: Run) => Promise<Cursor>,
  ): Promise<{ snapshot: AnyMachineSnapshot | null; emitted: EventObject[] }> {
    const { observer } = this.engine;
    const asked = performance.now();
    try {
      return await inSpan(observer, 'engine.lock', { machine: this.name, command }, () =>
        this.lockedAttempts(key, command, body),
      );
    } catch (error) {
      if (error instanceof TokenBusyError) {
        observer.onLockWait?.({ machine: this.name, ms: performance.now() - asked });
        observer.onTokenBusy?.({ machine: this.name });
      }
      throw this.noteFailure(error);
    }
  }

  private async lockedAttempts(
    key: string,
    command: string,
    body: (cursor: Cursor, run: Run) => Promise<Cursor>,
  ): Promise<{ snapshot: AnyMachineSnapshot | null; emitted: EventObject[] }> {
    for (let attempt = 1; ; attempt++) {
      const asked = performance.now();
      try {
        return await this.lock.withLock(
          key,
          async (held, answer) => {
            this.engine.observer.onLockWait?.({
              machine: this.name,
              ms: performance.now() - asked,
            });
            const record = await this.readable(key, async () =>
              this.adopt(key, await this.store.loaded(key, held.read)),
            );
            await this.config.hook?.('after-load', { key, command });
            let cursor = await this.readable(key, () => this.cursorOf(key, record));
            const run: Run = { key, command, emitted: [], clear: null, deferred: null };
            if (record !== null) {
              // What a command that died before its actions all ran left owed
              // (usually nothing) runs first, exactly as stored. Its emits were
              // for a caller long gone.
              cursor = await this.runOwed(run, cursor, record.owed, record.version, false);
            }
            cursor = await body(cursor, run);
            // Nothing left can change the answer: give it now; arm the timers
            // the last write owes, clear and unlock after it.
            const result = { snapshot: cursor.snapshot, emitted: run.emitted };
            answer(result);
            await this.armDeferred(run, cursor.lifeId);
            if (run.clear !== null) {
              // Not awaited: it goes out on the lock's connection ahead of the
              // release, which is awaited. Should it fail, the next access or
              // the sweep runs the (idempotent) actions again and clears them.
              this.store.clearOwed(key, run.clear).catch(() => undefined);
            }
            return result;
          },
          (request: LockRequest) => this.store.lockAndLoad(key, request),
        );
      } catch (error) {
        // A refused write: our lease ran out and another process moved the key
        // on. Start again from a fresh read under the lock.
        if (!(error instanceof StaleWriteError) || attempt >= STALE_WRITE_RETRIES) throw error;
        this.engine.observer.onStaleWrite?.({ machine: this.name });
      }
    }
  }

  /** Arms the timers the command's last write left for after the answer. */
  private async armDeferred(run: Run, lifeId: string): Promise<void> {
    const deferred = run.deferred;
    if (deferred === null) return;
    run.deferred = null;
    await Promise.all(deferred.owed.map((action) => this.arm(run.key, lifeId, action)));
    run.clear = deferred.version;
  }

  private async arm(key: string, lifeId: string, action: OwedTimer): Promise<void> {
    await this.timers.arm({
      key,
      lifeId,
      id: action.id,
      seq: action.seq,
      dueAt: action.dueAt,
      event: action.event,
    });
  }

  private retentionOf(snapshot: AnyMachineSnapshot): number {
    const { finalStateRetentionMs: retention } = this.config;
    return typeof retention === 'number'
      ? retention
      : retention(snapshot as SnapshotFrom<TMachine>);
  }

  /** A record of an earlier store format, in today's terms (see adoptLegacy). */
  private adopt(key: string, record: StoredRecord | null): StoredRecord | null {
    if (record?.legacy == null) return record;
    const { adoptLegacy } = this.config;
    if (adoptLegacy === undefined) {
      throw new StoredDataError(`key ${key} holds a record of an earlier format`);
    }
    const adopted = adoptLegacy({
      key,
      lifeId: record.lifeId,
      machineVersion: record.machineVersion,
      snapshot: record.snapshot,
      owed: record.legacy.owed,
    });
    return { ...record, machine: this.config.name, ...adopted, legacy: null };
  }

  private cursorOf(key: string, record: StoredRecord | null): Cursor {
    if (record === null) {
      // Stryker disable next-line StringLiteral,BooleanLiteral: a key without a record gets its life id and its timers from its first write, which apply() always makes
      return { expected: null, lifeId: '', snapshot: null, timers: {}, dirty: false };
    }
    return {
      expected: { version: record.version, lifeId: record.lifeId },
      lifeId: record.lifeId,
      snapshot: this.resolve(key, record),
      timers: record.timers,
      dirty: false,
    };
  }

  private resolve(key: string, record: StoredRecord): AnyMachineSnapshot {
    const { version, migrate, machine, name } = this.config;
    if (record.machine !== name) {
      throw new StoredDataError(`key ${key} holds a snapshot of machine "${record.machine}"`);
    }
    let persisted = record.snapshot;
    if (record.machineVersion !== version) {
      if (record.machineVersion > version || migrate === undefined) {
        throw new StoredDataError(
          `key ${key} holds a snapshot of ${name} version ${record.machineVersion}; this build reads ${version}`,
        );
      }
      persisted = migrate(persisted, record.machineVersion);
    }
    try {
      return machine.resolveState(
        persisted as Parameters<TMachine['resolveState']>[0],
      ) as AnyMachineSnapshot;
    } catch (error) {
      throw new StoredDataError(`stored state of key ${key} cannot be read`, { cause: error });
    }
  }

  /** One event: transition, persist if anything changed, run the owed actions. */
  private async apply(
    run: Run,
    cursor: Cursor,
    event: EventFromLogic<TMachine>,
    collect: boolean,
  ): Promise<Cursor> {
    // Stryker disable next-line ArrayDeclaration: a value that is no action names no handler, so commit() owes nothing for it
    const actions: CollectedAction[] = [];
    let current = cursor.snapshot;
    let lifeId = cursor.lifeId;
    if (current === null) {
      lifeId = newLifeId();
      const input = this.config.input(run.key, this.engine.clock.now(), lifeId);
      const start = this.steps.initial(input);
      current = start.snapshot;
      actions.push(...start.actions);
    }
    const step = this.steps.transition(current, event);
    actions.push(...step.actions);
    const moved = this.noteTransition(current, step.snapshot, event);
    return inSpan(this.engine.observer, 'engine.transition', moved, () =>
      this.commit(run, cursor, { snapshot: step.snapshot, lifeId, actions }, collect),
    );
  }

  private async commit(
    run: Run,
    cursor: Cursor,
    next: {
      snapshot: AnyMachineSnapshot;
      lifeId: string;
      actions: readonly CollectedAction[];
    },
    collect: boolean,
  ): Promise<Cursor> {
    // The version this write gets (compare-and-set: the stored one + 1).
    const version = (cursor.expected?.version ?? 0) + 1;
    const now = this.engine.clock.now();
    const timers = new Map(Object.entries(cursor.timers));
    let owed: OwedAction[] = [];
    const cancelledJobs: string[] = [];
    let timersChanged = cursor.dirty;
    for (const [index, action] of next.actions.entries()) {
      switch (action.type) {
        case 'xstate.emit': {
          const { event } = action.params as { event: EventObject };
          if (collect) run.emitted.push(event);
          break;
        }
        case 'xstate.raise': {
          const { event, id, delay } = action.params as {
            event: EventObject;
            id?: string;
            delay?: number;
          };
          // Without a delay xstate handled it inside the transition.
          if (typeof delay !== 'number') break;
          const timerId = id ?? `${version}.${index}`;
          const entry = { seq: version, dueAt: now + delay };
          timers.set(timerId, { ...entry, event });
          // Stryker disable next-line BooleanLiteral: the timer is owed, a change by itself; a cancel that takes it back in this step marks its own
          timersChanged = true;
          owed = owed.filter((o) => o.kind !== 'timer' || o.id !== timerId);
          owed.push({ kind: 'timer', id: timerId, ...entry, event });
          break;
        }
        case 'xstate.cancel': {
          const { sendId } = action.params as { sendId: string };
          const live = timers.get(sendId);
          if (live === undefined) break;
          if (live.seq !== version) {
            cancelledJobs.push(
              timerJobId({ key: run.key, lifeId: next.lifeId, id: sendId, seq: live.seq }),
            );
          }
          timers.delete(sendId);
          timersChanged = true;
          owed = owed.filter((o) => o.kind !== 'timer' || o.id !== sendId);
          break;
        }
        default:
          if (Object.hasOwn(this.effects, action.type)) {
            owed.push({ kind: 'effect', type: action.type, params: action.params ?? null });
          }
      }
    }
    const final = next.snapshot.status !== 'active';
    if (final && timers.size > 0) {
      // No timer can move a final snapshot.
      timers.clear();
      owed = owed.filter((o) => o.kind !== 'timer');
      // Stryker disable next-line BooleanLiteral: reaching a final state changes the snapshot's status, a change by itself
      timersChanged = true;
    }

    const changed =
      cursor.snapshot === null ||
      timersChanged ||
      owed.length > 0 ||
      !sameState(cursor.snapshot, next.snapshot);
    if (!changed) return { ...cursor, snapshot: next.snapshot };

    // This write replaces the stored owed list: what an earlier write of the
    // command left for after the answer is armed first.
    await this.armDeferred(run, cursor.lifeId);
    const saved = await this.store.save(run.key, {
      expected: cursor.expected,
      lifeId: next.lifeId,
      machine: this.config.name,
      machineVersion: this.config.version,
      snapshot: persistedSnapshot(this.config.machine, next.snapshot),
      owed,
      timers: Object.fromEntries(timers),
      retentionMs: final ? this.retentionOf(next.snapshot) : null,
      state: indexState(next.snapshot.value as StateValue),
      previousState:
        cursor.snapshot === null ? null : indexState(cursor.snapshot.value as StateValue),
    });
    // The write stored its own owed list in place of any earlier one (which
    // had run: owed actions always run before the next transition).
    run.clear = null;
    await this.config.hook?.('after-write', {
      key: run.key,
      command: run.command,
      snapshot: next.snapshot,
      owes: owed.length > 0,
    });
    const written: Cursor = {
      expected: { version: saved, lifeId: next.lifeId },
      lifeId: next.lifeId,
      snapshot: next.snapshot,
      timers: Object.fromEntries(timers),
      dirty: false,
    };
    // Best effort, not waited for: a cancelled timer's job changes nothing if
    // delivered. No cancelled job: no round trip.
    void this.timers.remove(cancelledJobs);
    if (owed.length > 0 && owed.every((action): action is OwedTimer => action.kind === 'timer')) {
      // No handler runs, so no event follows: this is the command's last
      // write, and its answer does not wait for the timers.
      run.deferred = { owed, version: saved };
      return written;
    }
    return this.runOwed(run, written, owed, saved, collect);
  }

  /**
   * Runs owed actions in order (arm timers, call effect handlers), then
   * applies the events the handlers answered with.
   */
  private async runOwed(
    run: Run,
    cursor: Cursor,
    owed: readonly OwedAction[],
    version: number,
    collect: boolean,
  ): Promise<Cursor> {
    if (owed.length === 0) return cursor;
    const feedback: EventFromLogic<TMachine>[] = [];
    for (const [index, action] of owed.entries()) {
      if (action.kind === 'timer') {
        await this.arm(run.key, cursor.lifeId, action);
        continue;
      }
      const handler = this.effects[action.type];
      if (handler === undefined) continue;
      const answer = await this.runEffect(action.type, () =>
        handler(action.params as never, {
          key: run.key,
          operationId: `${run.key}:${cursor.lifeId}:${version}:${index}`,
          now: () => this.engine.clock.now(),
        }),
      );
      await this.config.hook?.('after-effect', {
        key: run.key,
        command: run.command,
        effect: action.type,
      });
      if (answer !== undefined) feedback.push(answer);
    }
    run.clear = version;
    let next = cursor;
    for (const event of feedback) next = await this.apply(run, next, event, collect);
    return next;
  }

  // What the engine tells its observer (EngineObserver), apart from the command path.

  /** Reports a change of state; returns the transition's span attributes. */
  private noteTransition(
    from: AnyMachineSnapshot,
    to: AnyMachineSnapshot,
    event: EventObject,
  ): { machine: string; event: string; from: string; to: string } {
    const moved = {
      machine: this.name,
      event: event.type,
      from: UnchangingEvents.stateKey(from.value as StateValue),
      to: UnchangingEvents.stateKey(to.value as StateValue),
    };
    if (moved.from !== moved.to) this.engine.observer.onTransition?.(moved);
    return moved;
  }

  /** Runs an effect handler in its span, timed; the outcome is its feedback event's type. */
  private async runEffect<T extends EventObject | undefined>(
    name: string,
    handle: () => Promise<T>,
  ): Promise<T> {
    const { observer } = this.engine;
    const started = performance.now();
    let outcome = 'error';
    try {
      const answer = await inSpan(
        observer,
        'engine.effect',
        { machine: this.name, effect: name },
        (annotate) =>
          handle().then((event) => {
            annotate({ outcome: event?.type ?? 'none' });
            return event;
          }),
      );
      outcome = answer?.type ?? 'none';
      return answer;
    } finally {
      observer.onEffect?.({
        machine: this.name,
        name,
        outcome,
        durationMs: performance.now() - started,
      });
    }
  }

  /** Reports a command's failure on Redis (by kind); returns the error. */
  private noteFailure(error: unknown): unknown {
    const kind = redisErrorKind(error);
    if (kind !== null) this.engine.observer.onRedisError?.(kind);
    return error;
  }

  private async observeFailure<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      throw this.noteFailure(error);
    }
  }

  /** Keys whose owed actions have not run, and when the oldest of them was written (Redis's clock). */
  outboxState(): Promise<{ depth: number; oldestAt: number | null }> {
    return this.store.outboxState();
  }

  /** The machine's timer jobs by BullMQ state. */
  async timerJobCounts(): Promise<Record<string, number>> {
    // Summed over the machine's queues (several on a Cluster).
    const counts = await Promise.all(
      this.timers.queues.map((queue) =>
        queue.getJobCounts('waiting', 'delayed', 'active', 'failed'),
      ),
    );
    const total: Record<string, number> = {};
    for (const count of counts) {
      for (const [state, n] of Object.entries(count)) total[state] = (total[state] ?? 0) + n;
    }
    return total;
  }
}

function isEventFactory<TEvent extends EventObject>(
  event: TEvent | ((now: number) => TEvent),
): event is (now: number) => TEvent {
  return typeof event === 'function';
}

/**
 * 16 random hex digits: the last 48 bits and the first 16 of a random UUID
 * (none of its fixed version or variant bits). Node draws UUIDs from a pool
 * it refills in bulk, where randomBytes calls the system's generator each time.
 */
function newLifeId(): string {
  const uuid = randomUUID();
  return uuid.slice(24) + uuid.slice(0, 4);
}

function sameState(a: { status: string; value: unknown; context: unknown }, b: typeof a): boolean {
  return a.status === b.status && a.context === b.context && sameValue(a.value, b.value);
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const ka = Object.keys(a);
  // Stryker disable next-line BooleanLiteral: at one place in one machine's state, values have as many keys (one for a compound state, every region for a parallel one)
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) =>
    sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

/** The names the state index reports counts for: the root's child states. */
function topLevelStates(machine: AnyStateMachine): string[] {
  return Object.keys(machine.root.states);
}

/** Makes `config.machine` durable on `engine`. */
export function durableMachine<TMachine extends AnyStateMachine>(
  engine: Engine,
  config: DurableMachineConfig<TMachine>,
): DurableActors<TMachine> {
  return new DurableActors(engine, config);
}
