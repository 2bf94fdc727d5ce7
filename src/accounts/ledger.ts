import type { Redis, Result } from 'ioredis';
import { StoreLostError, toAppError } from '../errors.ts';
import type { ReplicaWait } from '../runtime/redis/replica-wait.ts';
import type { Keys } from '../payments/keys.ts';
import type { StoreIdentity } from '../runtime/redis/store-identity.ts';
import { readLuaScript } from '../runtime/lua/scripts.ts';

/**
 * The account ledger. Balances are integer cents, created lazily at the
 * initial balance. Every movement is applied by one Lua script that checks,
 * applies and records the operation id atomically, so repeating an operation
 * returns its first outcome and never moves money twice. Balances never go
 * negative.
 *
 * Per account the store holds the balance, the newest `ledgerLimit` entries
 * of its ledger, and the operation ids applied in the last
 * `operationRetentionMs` (a hash of outcomes and a sorted set of the same ids
 * by Redis's time, trimmed by the movement script itself): its size is
 * bounded by the account's movements in that window, whatever the number of
 * tokens that ever paid from it.
 */

export type MovementKind = 'withdrawal' | 'deposit';

export interface LedgerEntry {
  readonly operationId: string;
  readonly kind: MovementKind;
  readonly amountCents: number;
  readonly balanceCents: number;
  readonly token: string;
  readonly at: number;
}

export interface MovementResult {
  /** `declined`: funds were short and nothing moved. */
  readonly outcome: 'applied' | 'declined';
  readonly balanceCents: number;
  /** True when the operation id had been seen and this is its recorded outcome. */
  readonly repeated: boolean;
}

export interface AccountView {
  readonly accountId: string;
  readonly balanceCents: number;
  readonly ledger: readonly LedgerEntry[];
}

// lua/move.lua (KEYS, ARGV and output in its header); it refuses another
// store with the runtime's store guard.
const MOVE_SCRIPT = readLuaScript(new URL('./lua/move.lua', import.meta.url));

type MoveReply = [outcome: 'applied' | 'declined', balance: string, repeated: 0 | 1];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    paystateMove(
      balanceKey: string,
      operationsKey: string,
      ledgerKey: string,
      storeKey: string,
      operationTimesKey: string,
      operationId: string,
      amountCents: number,
      initialBalanceCents: number,
      at: number,
      token: string,
      kind: MovementKind,
      storeId: string,
      ledgerLimit: number,
      operationRetentionMs: number,
    ): Result<MoveReply, Context>;
  }
}

/** The most recent entries shown with an account. */
export const LEDGER_VIEW_LIMIT = 100;

export interface LedgerLimits {
  /** Entries kept per account, newest kept (`ACCOUNT_LEDGER_LIMIT`). */
  readonly ledgerLimit: number;
  /**
   * How long an operation id is remembered after it was applied
   * (`ACCOUNT_OPERATION_RETENTION_MS`): longer than any retry of it can come.
   */
  readonly operationRetentionMs: number;
}

export const DEFAULT_LEDGER_LIMITS: LedgerLimits = {
  ledgerLimit: 1_000,
  operationRetentionMs: 2 * 86_400_000 + 3_600_000,
};

export class Ledger {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly initialBalanceCents: number,
    /** The store every movement must find; a ledger without one only reads. */
    private readonly identity?: StoreIdentity,
    /** Replicas that must hold a movement before its outcome is returned. */
    private readonly replicas?: Pick<ReplicaWait, 'confirm'>,
    private readonly limits: LedgerLimits = DEFAULT_LEDGER_LIMITS,
  ) {
    redis.defineCommand('paystateMove', { numberOfKeys: 5, lua: MOVE_SCRIPT });
  }

  withdraw(operationId: string, accountId: string, amountCents: number, token: string, at: number) {
    return this.move('withdrawal', operationId, accountId, amountCents, token, at);
  }

  deposit(operationId: string, accountId: string, amountCents: number, token: string, at: number) {
    return this.move('deposit', operationId, accountId, amountCents, token, at);
  }

  async view(accountId: string): Promise<AccountView> {
    try {
      const [balance, entries] = await Promise.all([
        this.redis.hget(this.keys.account(accountId), 'balance'),
        this.redis.lrange(this.keys.accountLedger(accountId), -LEDGER_VIEW_LIMIT, -1),
      ]);
      return {
        accountId,
        balanceCents: balance === null ? this.initialBalanceCents : Number(balance),
        ledger: entries.map((e) => JSON.parse(e) as LedgerEntry),
      };
    } catch (error) {
      throw toAppError(error);
    }
  }

  private async move(
    kind: MovementKind,
    operationId: string,
    accountId: string,
    amountCents: number,
    token: string,
    at: number,
  ): Promise<MovementResult> {
    const { identity } = this;
    if (identity === undefined) throw new Error('this ledger only reads');
    try {
      const [outcome, balance, repeated] = await this.redis.paystateMove(
        this.keys.account(accountId),
        this.keys.accountOperations(accountId),
        this.keys.accountLedger(accountId),
        identity.keyFor(this.keys.account(accountId)),
        this.keys.accountOperationTimes(accountId),
        operationId,
        amountCents,
        this.initialBalanceCents,
        at,
        token,
        kind,
        identity.id,
        this.limits.ledgerLimit,
        this.limits.operationRetentionMs,
      );
      await this.replicas?.confirm(this.keys.account(accountId));
      return { outcome, balanceCents: Number(balance), repeated: repeated === 1 };
    } catch (error) {
      const appError = toAppError(error);
      if (appError instanceof StoreLostError) identity.noteLost();
      throw appError;
    }
  }
}
