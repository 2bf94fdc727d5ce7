import type { Redis, Result } from 'ioredis';
import type { Config } from '../config.ts';
import { LedgerStateError, MovementTooOldError, StoreLostError, toAppError } from '../errors.ts';
import type { Currency } from '../money/currency.ts';
import type { ReplicaWait } from '../runtime/redis/replica-wait.ts';
import type { Keys } from '../payments/keys.ts';
import type { StoreIdentity } from '../runtime/redis/store-identity.ts';
import { readLuaScript } from '../runtime/lua/scripts.ts';

/**
 * The account ledger. An account holds, per currency, `available` and
 * `held` funds: integers in the currency's minor unit, each currency created
 * lazily with `available` at the initial balance and nothing held, neither
 * ever negative. Every movement is applied by one Lua script that checks,
 * applies and records the operation id atomically, so repeating an operation
 * returns its first outcome and never moves money twice.
 *
 * The movements (`kind`), and what they do to (available, held):
 * - `withdrawal` (a charge captured at once): available − amount, declined if short;
 * - `hold` (an authorization): available − amount, held + amount, declined if short;
 * - `capture`: held − authorized, available + (authorized − amount): the
 *   amount is captured, the rest of the hold released;
 * - `release` (a void): held − amount, available + amount;
 * - `deposit` (a refund): available + amount.
 * So per (account, currency): available + held + Σ captured − Σ refunded =
 * initial, where captured counts withdrawals and captures.
 *
 * Per account the store holds one hash of balances (`available:CUR`,
 * `held:CUR`), the newest `ledgerLimit` entries of its ledger, and the
 * operation ids applied in the last `operationRetentionMs` (a hash of
 * outcomes and a sorted set of the same ids by Redis's time, trimmed by the
 * movement script itself): its size is bounded by the account's movements in
 * that window, whatever the number of tokens that ever paid from it. A
 * movement whose id is unknown and which was first asked for longer ago than
 * that window is refused (MovementTooOldError): its id may have been
 * forgotten after it was applied, and applying it again would move money twice.
 *
 * An account written before currencies has one field, `balance`: the
 * available funds of the default currency. Reads take it as such; the first
 * movement on the account renames it.
 */

export type MovementKind = 'withdrawal' | 'hold' | 'capture' | 'release' | 'deposit';

export interface LedgerEntry {
  readonly operationId: string;
  readonly kind: MovementKind;
  readonly currency: Currency;
  /** Withdrawn, held, captured, released or deposited. */
  readonly amountCents: number;
  /** A capture's part of the hold given back to available funds (0 for other kinds). */
  readonly releasedCents: number;
  /** Available funds of the currency after the movement. */
  readonly balanceCents: number;
  /** Held funds of the currency after the movement. */
  readonly heldCents: number;
  readonly token: string;
  /** When it was applied (Redis's clock, epoch ms). */
  readonly at: number;
}

export interface Movement {
  readonly kind: MovementKind;
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly amountCents: number;
  /** A capture's authorized amount (the hold it settles); 0 for other kinds. */
  readonly authorizedCents?: number;
  readonly token: string;
  /** When the movement was first asked for (Redis's clock, epoch ms): the same on every retry. */
  readonly at: number;
}

export interface MovementResult {
  /** `declined`: funds were short and nothing moved (withdrawals and holds only). */
  readonly outcome: 'applied' | 'declined';
  /** Available funds of the movement's currency after it. */
  readonly balanceCents: number;
  readonly heldCents: number;
  /** True when the operation id had been seen and this is its recorded outcome. */
  readonly repeated: boolean;
}

export interface CurrencyBalance {
  readonly availableCents: number;
  readonly heldCents: number;
}

export interface AccountView {
  readonly accountId: string;
  /** Available funds of the selected currency (the default one when none is selected). */
  readonly balanceCents: number;
  /** Per currency: the selected one only, or the default one and every one the account used. */
  readonly balances: Readonly<Record<Currency, CurrencyBalance>>;
  /** The last movements, oldest first (of the selected currency only, when one is). */
  readonly ledger: readonly LedgerEntry[];
}

/** Error reply of the movement script for a capture or release of more than is held. */
const HOLD_SHORT_REPLY = 'HOLD_SHORT';

// lua/move.lua (KEYS, ARGV and output in its header); it refuses another
// store with the runtime's store guard.
const MOVE_SCRIPT = readLuaScript(new URL('./lua/move.lua', import.meta.url));

type MoveReply = [
  outcome: 'applied' | 'declined' | 'too_old',
  available: string,
  held: string,
  repeated: 0 | 1,
];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    paystateMove(
      balanceKey: string,
      operationsKey: string,
      ledgerKey: string,
      storeKey: string,
      operationTimesKey: string,
      operationId: string,
      kind: MovementKind,
      currency: Currency,
      amountCents: number,
      authorizedCents: number,
      initialBalanceCents: number,
      token: string,
      storeId: string,
      ledgerLimit: number,
      operationRetentionMs: number,
      at: number,
      defaultCurrency: Currency,
    ): Result<MoveReply, Context>;
  }
}

/** The most recent entries shown with an account. */
export const LEDGER_VIEW_LIMIT = 100;

export interface LedgerSettings {
  /** Entries kept per account, newest kept (`ACCOUNT_LEDGER_LIMIT`). */
  readonly ledgerLimit: number;
  /**
   * How long an operation id is remembered after it was applied
   * (`ACCOUNT_OPERATION_RETENTION_MS`): longer than any retry of it can come.
   */
  readonly operationRetentionMs: number;
  /** `PAYSTATE_DEFAULT_CURRENCY`: of `balanceCents`, and of a balance stored before currencies. */
  readonly defaultCurrency: Currency;
}

export const DEFAULT_LEDGER_SETTINGS: LedgerSettings = {
  ledgerLimit: 1_000,
  operationRetentionMs: 2 * 86_400_000 + 3_600_000,
  defaultCurrency: 'USD',
};

/** The ledger's settings in `config`. */
export function ledgerSettingsOf(config: Config): LedgerSettings {
  return {
    ledgerLimit: config.accountLedgerLimit,
    operationRetentionMs: config.accountOperationRetentionMs,
    defaultCurrency: config.defaultCurrency,
  };
}

/** An entry as stored: one written before currencies has no currency, held or released part. */
type StoredEntry = Omit<LedgerEntry, 'currency' | 'heldCents' | 'releasedCents'> &
  Partial<Pick<LedgerEntry, 'currency' | 'heldCents' | 'releasedCents'>>;

export class Ledger {
  private readonly settings: LedgerSettings;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly initialBalanceCents: number,
    /** The store every movement must find; a ledger without one only reads. */
    private readonly identity?: StoreIdentity,
    /** Replicas that must hold a movement before its outcome is returned. */
    private readonly replicas?: Pick<ReplicaWait, 'confirm'>,
    settings: Partial<LedgerSettings> = {},
  ) {
    this.settings = { ...DEFAULT_LEDGER_SETTINGS, ...settings };
    redis.defineCommand('paystateMove', { numberOfKeys: 5, lua: MOVE_SCRIPT });
  }

  get defaultCurrency(): Currency {
    return this.settings.defaultCurrency;
  }

  /** `currency`: show that currency only; otherwise the default one and every one used. */
  async view(accountId: string, currency?: Currency): Promise<AccountView> {
    const { defaultCurrency } = this.settings;
    try {
      const [stored, length] = await Promise.all([
        this.redis.hgetall(this.keys.account(accountId)),
        this.redis.llen(this.keys.accountLedger(accountId)),
      ]);
      const all = this.balancesOf(stored);
      const selected = currency ?? defaultCurrency;
      const balances =
        currency === undefined
          ? { [defaultCurrency]: this.balanceOf(all, defaultCurrency), ...all }
          : { [currency]: this.balanceOf(all, currency) };
      return {
        accountId,
        balanceCents: this.balanceOf(all, selected).availableCents,
        balances,
        ledger: await this.lastEntries(accountId, length, currency),
      };
    } catch (error) {
      throw toAppError(error);
    }
  }

  private balanceOf(balances: Record<Currency, CurrencyBalance>, currency: Currency) {
    return balances[currency] ?? { availableCents: this.initialBalanceCents, heldCents: 0 };
  }

  private balancesOf(stored: Record<string, string>): Record<Currency, CurrencyBalance> {
    const balances: Record<Currency, { availableCents: number; heldCents: number }> = {};
    const entry = (currency: Currency) =>
      (balances[currency] ??= { availableCents: this.initialBalanceCents, heldCents: 0 });
    for (const [field, value] of Object.entries(stored)) {
      const [name, currency] = field.split(':');
      if (name === 'available' && currency !== undefined)
        entry(currency).availableCents = Number(value);
      else if (name === 'held' && currency !== undefined) entry(currency).heldCents = Number(value);
    }
    const legacy = stored.balance;
    if (
      legacy !== undefined &&
      stored[`available:${this.settings.defaultCurrency}`] === undefined
    ) {
      entry(this.settings.defaultCurrency).availableCents = Number(legacy);
    }
    return Object.fromEntries(Object.entries(balances).sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /**
   * The newest LEDGER_VIEW_LIMIT entries, oldest first; of `currency` only
   * when given (read back in pages until enough are found: the list is
   * bounded by the ledger limit).
   */
  private async lastEntries(
    accountId: string,
    length: number,
    currency: Currency | undefined,
  ): Promise<LedgerEntry[]> {
    const key = this.keys.accountLedger(accountId);
    const found: LedgerEntry[] = [];
    for (let end = length; end > 0 && found.length < LEDGER_VIEW_LIMIT; end -= LEDGER_VIEW_LIMIT) {
      const start = Math.max(0, end - LEDGER_VIEW_LIMIT);
      const page = (await this.redis.lrange(key, start, end - 1)).map((raw) =>
        this.entryOf(JSON.parse(raw) as StoredEntry),
      );
      const kept = currency === undefined ? page : page.filter((e) => e.currency === currency);
      found.unshift(...kept.slice(-(LEDGER_VIEW_LIMIT - found.length)));
    }
    return found;
  }

  private entryOf(stored: StoredEntry): LedgerEntry {
    return {
      operationId: stored.operationId,
      kind: stored.kind,
      currency: stored.currency ?? this.settings.defaultCurrency,
      amountCents: stored.amountCents,
      releasedCents: stored.releasedCents ?? 0,
      balanceCents: stored.balanceCents,
      heldCents: stored.heldCents ?? 0,
      token: stored.token,
      at: stored.at,
    };
  }

  /**
   * Applies `movement` once per operation id. Throws MovementTooOldError for
   * an unknown id asked for longer ago than the retention, LedgerStateError
   * for a capture or release of more than is held (nothing moves in either case).
   */
  async move(movement: Movement): Promise<MovementResult> {
    const { identity } = this;
    if (identity === undefined) throw new Error('this ledger only reads');
    const { kind, operationId, accountId, currency, amountCents, token, at } = movement;
    const authorizedCents = movement.authorizedCents ?? 0;
    if (
      !isAmount(amountCents) ||
      (kind === 'capture' && !(isAmount(authorizedCents) && amountCents <= authorizedCents))
    ) {
      throw new Error(`invalid ${kind} of ${amountCents} (authorized ${authorizedCents})`);
    }
    if (!Number.isSafeInteger(at)) throw new Error(`invalid time of ${kind} ${operationId}: ${at}`);
    let reply: MoveReply;
    try {
      reply = await this.redis.paystateMove(
        this.keys.account(accountId),
        this.keys.accountOperations(accountId),
        this.keys.accountLedger(accountId),
        identity.keyFor(this.keys.account(accountId)),
        this.keys.accountOperationTimes(accountId),
        operationId,
        kind,
        currency,
        amountCents,
        authorizedCents,
        this.initialBalanceCents,
        token,
        identity.id,
        this.settings.ledgerLimit,
        this.settings.operationRetentionMs,
        at,
        this.settings.defaultCurrency,
      );
      await this.replicas?.confirm(this.keys.account(accountId));
    } catch (error) {
      if (error instanceof Error && error.message.includes(HOLD_SHORT_REPLY)) {
        throw new LedgerStateError(
          `${kind} ${operationId} on account ${accountId} (${currency}): ${error.message.slice(error.message.indexOf(HOLD_SHORT_REPLY) + HOLD_SHORT_REPLY.length + 1)}`,
        );
      }
      const appError = toAppError(error);
      if (appError instanceof StoreLostError) identity.noteLost();
      throw appError;
    }
    const [outcome, available, held, repeated] = reply;
    if (outcome === 'too_old') {
      throw new MovementTooOldError(operationId, accountId, this.settings.operationRetentionMs);
    }
    return {
      outcome,
      balanceCents: Number(available),
      heldCents: Number(held),
      repeated: repeated === 1,
    };
  }
}

/** A movement's amount: a positive integer Lua's numbers and cjson carry exactly. */
function isAmount(cents: number): boolean {
  return Number.isSafeInteger(cents) && cents > 0;
}
