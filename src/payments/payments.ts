import type { Redis } from 'ioredis';
import type { Ledger } from '../accounts/ledger.ts';
import {
  durableMachine,
  RuntimeError,
  type DurableActors,
  type Engine,
  type SendResult,
} from '../runtime/index.ts';
// The store layout of the release before the engine, its engine-less index
// reader (the CLI) and the fault points of the fault suite: runtime internals.
import {
  setCommandHook,
  StateIndex,
  type HookInfo,
  type HookPoint,
  type MachineKeys,
} from '../runtime/testing.ts';
import { tenantOfStoredKey, type Tenant } from '../tenants.ts';
import { adoptLegacyPayment } from './legacy-records.ts';
import { migratePaymentSnapshot, type MigrationDefaults } from './payment-migrations.ts';
import { LedgerProcessor } from '../processor/ledger-processor.ts';
import type { Processor } from '../processor/processor.ts';
import {
  PAYMENT_MACHINE_VERSION,
  paymentMachine,
  type PaymentMachine,
} from '../machine/payment.machine.ts';
import { paymentEffects } from './payment-effects.ts';
import type { PaymentSnapshot } from './payment.snapshot.ts';
import type {
  CaptureMode,
  ClientEvent,
  Outcome,
  Payment,
  PaymentStatus,
} from '../machine/payment.types.ts';

/**
 * Payments on the engine: the payment machine durable per token, its
 * effects on the ledger, and the commands the API and the CLI use.
 */

/**
 * Named steps of a payment command, for instrumentation and fault injection
 * in tests (see PaymentsOptions.step), mapped onto the engine's hooks.
 */
export const PAYMENT_STEPS = [
  'after-lock',
  'after-persist-intent',
  'after-ledger',
  'after-persist-outcome',
  'before-response',
] as const;

export type PaymentStep = (typeof PAYMENT_STEPS)[number];

export interface StepContext {
  readonly token: string;
  /** The client event being handled (a resumed step is handled on behalf of it). */
  readonly event: ClientEvent['type'] | 'RECOVER';
}

export type PaymentStepHook = (step: PaymentStep, context: StepContext) => Promise<void> | void;

export interface PaymentsOptions {
  readonly ledger: Ledger;
  /** Where money moves; by default the built-in processor over `ledger`. */
  readonly processor?: Processor;
  /** The currency of a payment that names none (`PAYSTATE_DEFAULT_CURRENCY`); USD by default. */
  readonly defaultCurrency?: string;
  /** How long an authorization waits for its capture (`PAYMENT_CAPTURE_WINDOW_MS`); 7 days by default. */
  readonly captureWindowMs?: number;
  /** Refunds one payment may have (`PAYMENT_REFUND_LIMIT`); REFUND_LIMIT by default. */
  readonly refundLimit?: number;
  /** Where the records live (the layout of the release before the engine, kept). */
  readonly keys: MachineKeys;
  readonly paymentExpiryMs: number;
  readonly expiredRetentionMs: number;
  /** Called at the named steps of every command; inert unless set. */
  readonly step?: PaymentStepHook;
}

/** A payment as a client asks for it: no currency is the default one, no capture automatic. */
export interface PaymentRequest {
  readonly accountId: string;
  readonly amountCents: number;
  readonly currency?: string;
  readonly capture?: CaptureMode;
}

export interface RefundRequest {
  /** The client's refund key. */
  readonly refundId: string;
  /** Absent: what remains of the captured amount. */
  readonly amountCents?: number;
  readonly reason?: string;
}

export const DEFAULT_CURRENCY = 'USD';
export const DEFAULT_CAPTURE_WINDOW_MS = 7 * 86_400_000;

export interface CommandResult {
  /** The machine's answer to the client event. */
  readonly outcome: Outcome | null;
  /** The token's state after the command. */
  readonly snapshot: PaymentSnapshot | null;
}

const IN_FLIGHT: ReadonlySet<PaymentStatus> = new Set([
  'charging',
  'authorizing',
  'capturing',
  'voiding',
  'refunding',
]);

function stepOf(point: HookPoint, info: HookInfo): PaymentStep {
  switch (point) {
    case 'after-load':
      return 'after-lock';
    case 'after-write':
      return IN_FLIGHT.has((info.snapshot?.value ?? '') as PaymentStatus)
        ? 'after-persist-intent'
        : 'after-persist-outcome';
    case 'after-effect':
      return 'after-ledger';
  }
}

/** Every state of the payment machine, in the order of its definition. */
export const PAYMENT_STATES = Object.keys(paymentMachine.root.states) as PaymentStatus[];

/** The payments' state index on its own (a reader that runs no engine: the CLI). */
export function paymentIndex(redis: Redis, keys: MachineKeys): StateIndex {
  return new StateIndex(
    redis,
    keys,
    PAYMENT_STATES,
    keys.partitions === undefined ? null : { of: tenantOfStoredKey, base: keys.partitions },
  );
}

/** Why a token is listed as stuck (see DurableActors.stuck). */
export type StuckReason = 'owed' | 'timer' | 'unreadable';

/** A record found unreadable between the listing and its read: no state to show. */
function unreadableAsNull(error: unknown): null {
  if (error instanceof RuntimeError && error.code === 'record_unreadable') return null;
  throw error;
}

/** A read of one tenant's part of the index; none for local mode (every token). */
function partitionOf(tenant: Tenant | undefined): { partition?: string } {
  return tenant == null ? {} : { partition: tenant };
}

export class Payments {
  readonly actors: DurableActors<PaymentMachine>;
  readonly defaultCurrency: string;

  constructor(
    engine: Engine,
    private readonly options: PaymentsOptions,
  ) {
    const { step } = options;
    const defaults: MigrationDefaults = {
      defaultCurrency: options.defaultCurrency ?? DEFAULT_CURRENCY,
      captureWindowMs: options.captureWindowMs ?? DEFAULT_CAPTURE_WINDOW_MS,
    };
    this.defaultCurrency = defaults.defaultCurrency;
    const migrate = migratePaymentSnapshot(defaults);
    this.actors = durableMachine(engine, {
      name: 'payment',
      machine: paymentMachine,
      version: PAYMENT_MACHINE_VERSION,
      migrate,
      keys: () => options.keys,
      // A tenant's tokens are a partition of the index (local mode's have none).
      ...(options.keys.partitions === undefined ? {} : { partition: tenantOfStoredKey }),
      input: (token, now, lifeId) => ({
        token,
        lifeId,
        at: now,
        expiryMs: options.paymentExpiryMs,
        captureWindowMs: defaults.captureWindowMs,
        ...(options.refundLimit === undefined ? {} : { refundLimit: options.refundLimit }),
        retentionMs: options.expiredRetentionMs,
      }),
      // A timer's EXPIRE carries Redis's time of its delivery.
      timerEvent: (event, now) => ({ ...event, at: now }),
      effects: paymentEffects(
        options.processor ?? new LedgerProcessor(options.ledger),
        defaults.defaultCurrency,
      ),
      adoptLegacy: (record) => adoptLegacyPayment(record, migrate),
      // The retention of the token's life, fixed when its record was created.
      finalStateRetentionMs: (snapshot) => snapshot.context.limits.retentionMs,
    });
    if (step !== undefined) {
      setCommandHook(this.actors, (point: HookPoint, info: HookInfo) => {
        const event = info.command === 'recover' ? 'RECOVER' : info.command;
        return step(stepOf(point, info), { token: info.key, event: event as StepContext['event'] });
      });
    }
  }

  /** The payment a request asks for, its defaults filled in (a replay compares these). */
  paymentOf(request: PaymentRequest): Payment {
    return {
      accountId: request.accountId,
      amountCents: request.amountCents,
      currency: request.currency ?? this.defaultCurrency,
      capture: request.capture ?? 'automatic',
    };
  }

  pay(token: string, request: PaymentRequest): Promise<CommandResult> {
    const payment = this.paymentOf(request);
    return this.command(token, 'PAY', (at) => ({ type: 'PAY', ...payment, at }));
  }

  /** Captures (part of) an authorization; `null` when the token has no record (nothing written). */
  capture(token: string, amountCents?: number): Promise<CommandResult | null> {
    return this.commandIfExists(token, 'CAPTURE', (at) => ({
      type: 'CAPTURE',
      amountCents: amountCents ?? null,
      at,
    }));
  }

  /** Refunds (part of) the captured amount; `null` when the token has no record (nothing written). */
  refund(token: string, request: RefundRequest): Promise<CommandResult | null> {
    return this.commandIfExists(token, 'REFUND', (at) => ({
      type: 'REFUND',
      refundId: request.refundId,
      amountCents: request.amountCents ?? null,
      reason: request.reason ?? null,
      at,
    }));
  }

  cancel(token: string): Promise<CommandResult> {
    return this.command(token, 'CANCEL', (at) => ({ type: 'CANCEL', at }));
  }

  /** The stored state, as it is; reads take no lock. */
  get(token: string): Promise<PaymentSnapshot | null> {
    return this.actors.get(token);
  }

  /**
   * Tokens in `status`, newest write first, a page at a time (the engine's
   * state index; no SCAN); of one tenant when given (its part of the index).
   */
  list(options: {
    status: PaymentStatus;
    limit?: number;
    cursor?: string | null;
    tenant?: Tenant;
  }): ReturnType<DurableActors<PaymentMachine>['list']> {
    return this.actors.list({
      state: options.status,
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      ...(options.cursor == null ? {} : { cursor: options.cursor }),
      ...partitionOf(options.tenant),
    });
  }

  /**
   * Tokens per state, every state of the machine, and how many of them hold
   * a record that cannot be read (counted in their state too); of one tenant
   * when given.
   */
  async counts(
    tenant: Tenant = null,
  ): Promise<{ counts: Record<PaymentStatus, number>; unreadable: number }> {
    const { unreadable = 0, ...counts } = await this.actors.counts(tenant ?? undefined);
    return { counts: counts as Record<PaymentStatus, number>, unreadable };
  }

  /**
   * Tokens that wait for the worker or an operator, oldest first: owed work
   * (a charge, a refund, arming the expiry timer) written more than
   * `olderThanMs` ago and not done, an expiry timer due more than that ago,
   * a record that cannot be read. With the state each is in now (`null`: its
   * record is gone or cannot be read).
   */
  async stuck(
    olderThanMs: number,
    limit = 100,
    tenant: Tenant = null,
  ): Promise<
    { token: string; owedSince: number; status: PaymentStatus | null; reason: StuckReason }[]
  > {
    const owed = await this.actors.stuck(olderThanMs, limit, tenant ?? undefined);
    return Promise.all(
      owed.map(async ({ key, owedSince, reason }) => ({
        token: key,
        owedSince,
        status:
          reason === 'unreadable'
            ? null
            : ((await this.actors.get(key).catch(unreadableAsNull))?.value ?? null),
        reason,
      })),
    );
  }

  /** Completes whatever a crashed command left owed for `token`. */
  recover(token: string): Promise<void> {
    return this.actors.recover(token);
  }

  private async command(
    token: string,
    type: ClientEvent['type'],
    event: (at: number) => ClientEvent,
  ): Promise<CommandResult> {
    // The event is made once the lock is held: its time is Redis's time then.
    const result: SendResult<PaymentMachine> = await this.actors.send(token, event);
    await this.options.step?.('before-response', { token, event: type });
    return { outcome: result.emitted.at(-1)?.outcome ?? null, snapshot: result.snapshot };
  }

  private async commandIfExists(
    token: string,
    type: ClientEvent['type'],
    event: (at: number) => ClientEvent,
  ): Promise<CommandResult | null> {
    const result = await this.actors.sendIfExists(token, event);
    await this.options.step?.('before-response', { token, event: type });
    if (result === null) return null;
    return { outcome: result.emitted.at(-1)?.outcome ?? null, snapshot: result.snapshot };
  }
}
