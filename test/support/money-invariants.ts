/**
 * The money invariants, one source for the tests and the bench: what every
 * account's ledger must satisfy, read straight from Redis.
 *
 * Per (account, currency):
 * - the entries chain from the initial balance (available, nothing held) to
 *   the stored balances, each entry's `balanceCents`/`heldCents` being the
 *   running available and held funds after it;
 * - neither available nor held funds ever go below zero;
 * - available + held + Σ captured − Σ refunded = the initial balance, where
 *   captured counts withdrawals and captures (the invariant, checked
 *   from the stored balances and the sums, apart from the chain);
 * - each operation id is in the ledger once.
 * Per token (all its movements, whatever the account):
 * - at most one charge (a withdrawal or a hold);
 * - a hold is settled at most once (one capture or one release), a capture
 *   never above its hold;
 * - refunds only after money was captured, their total never above it.
 *
 * The chain needs whole ledgers: read with an `ACCOUNT_LEDGER_LIMIT` above
 * the movements of an account (the default 1,000 is, for the tests and bench).
 */
import type { Redis } from 'ioredis';
import type { LedgerEntry } from '../../src/accounts/ledger.ts';
import type { Keys } from '../../src/payments/keys.ts';

/** An account as stored: its balances hash, ledger list and operation outcomes. */
export interface StoredAccount {
  readonly accountId: string;
  readonly balances: Readonly<Record<string, string>>;
  readonly entries: readonly string[];
  /** Operation id → outcome; when given, every applied one must be in the ledger and vice versa. */
  readonly operations?: ReadonlyMap<string, string>;
}

export interface MoneySettings {
  readonly initialBalanceCents: number;
  /** The currency of a `balance` field and of entries stored before currencies. */
  readonly defaultCurrency?: string;
}

/** What the ledger holds for one token. */
export interface TokenMoney {
  /** Withdrawals (charges captured at once). */
  withdrawals: number;
  holds: number;
  captures: number;
  releases: number;
  /** Deposits (refunds). */
  deposits: number;
  capturedCents: number;
  refundedCents: number;
  heldCents: number;
}

export interface MoneyAudit {
  /** Broken invariants, one sentence each. */
  readonly problems: string[];
  readonly byToken: Map<string, TokenMoney>;
  /** Per currency, over every account read: funds as stored and moved. */
  readonly byCurrency: Map<
    string,
    {
      accounts: number;
      availableCents: number;
      heldCents: number;
      captured: number;
      refunded: number;
    }
  >;
  readonly movements: number;
}

const noMoney = (): TokenMoney => ({
  withdrawals: 0,
  holds: 0,
  captures: 0,
  releases: 0,
  deposits: 0,
  capturedCents: 0,
  refundedCents: 0,
  heldCents: 0,
});

type Stored = Partial<LedgerEntry> & Pick<LedgerEntry, 'operationId' | 'kind' | 'amountCents'>;

/** Reads `accountIds` whole from Redis, a pipeline per batch. */
export async function readAccounts(
  redis: Redis,
  keys: Keys,
  accountIds: Iterable<string>,
  { batch = 200 } = {},
): Promise<StoredAccount[]> {
  const ids = [...new Set(accountIds)];
  const accounts: StoredAccount[] = [];
  for (let i = 0; i < ids.length; i += batch) {
    const slice = ids.slice(i, i + batch);
    const pipeline = redis.pipeline();
    for (const id of slice) {
      pipeline.hgetall(keys.account(id));
      pipeline.lrange(keys.accountLedger(id), 0, -1);
      pipeline.hgetall(keys.accountOperations(id));
    }
    const replies = (await pipeline.exec()) ?? [];
    slice.forEach((accountId, j) => {
      const reply = (k: number): unknown => {
        const [error, value] = replies[3 * j + k] ?? [new Error('no reply'), null];
        if (error) throw error;
        return value;
      };
      accounts.push({
        accountId,
        balances: reply(0) as Record<string, string>,
        entries: reply(1) as string[],
        operations: new Map(Object.entries(reply(2) as Record<string, string>)),
      });
    });
  }
  return accounts;
}

/** Checks every invariant above over `accounts`. */
export function auditMoney(
  accounts: readonly StoredAccount[],
  settings: MoneySettings,
): MoneyAudit {
  const initial = settings.initialBalanceCents;
  const defaultCurrency = settings.defaultCurrency ?? 'USD';
  const problems: string[] = [];
  const byToken = new Map<string, TokenMoney>();
  const byCurrency: MoneyAudit['byCurrency'] = new Map();
  let movements = 0;

  for (const account of accounts) {
    const { accountId } = account;
    const running = new Map<
      string,
      { available: number; held: number; captured: number; refunded: number }
    >();
    const at = (currency: string) => {
      let state = running.get(currency);
      if (state === undefined) {
        state = { available: initial, held: 0, captured: 0, refunded: 0 };
        running.set(currency, state);
      }
      return state;
    };
    const seen = new Set<string>();
    for (const raw of account.entries) {
      const entry = JSON.parse(raw) as Stored;
      movements++;
      const currency = entry.currency ?? defaultCurrency;
      const state = at(currency);
      const amount = entry.amountCents;
      const money = byToken.get(entry.token ?? '') ?? noMoney();
      byToken.set(entry.token ?? '', money);
      switch (entry.kind) {
        case 'withdrawal':
          state.available -= amount;
          state.captured += amount;
          money.withdrawals++;
          money.capturedCents += amount;
          break;
        case 'hold':
          state.available -= amount;
          state.held += amount;
          money.holds++;
          money.heldCents += amount;
          break;
        case 'capture': {
          const released = entry.releasedCents ?? 0;
          state.held -= amount + released;
          state.available += released;
          state.captured += amount;
          money.captures++;
          money.capturedCents += amount;
          money.heldCents -= amount + released;
          break;
        }
        case 'release':
          state.held -= amount;
          state.available += amount;
          money.releases++;
          money.heldCents -= amount;
          break;
        case 'deposit':
          state.available += amount;
          state.refunded += amount;
          money.deposits++;
          money.refundedCents += amount;
          break;
        default:
          problems.push(
            `${accountId}: entry ${entry.operationId} of unknown kind ${String(entry.kind)}`,
          );
      }
      const where = `${accountId} ${currency}`;
      if (entry.balanceCents !== state.available || (entry.heldCents ?? 0) !== state.held) {
        problems.push(
          `${where}: entry ${entry.operationId} says ${entry.balanceCents} available, ${entry.heldCents ?? 0} held; the entries before it make ${state.available}, ${state.held}`,
        );
        state.available = entry.balanceCents ?? state.available;
        state.held = entry.heldCents ?? state.held;
      }
      if (state.available < 0 || state.held < 0) {
        problems.push(`${where}: went negative (${state.available} available, ${state.held} held)`);
      }
      if (seen.has(entry.operationId)) {
        problems.push(`${accountId}: operation ${entry.operationId} is in the ledger twice`);
      }
      seen.add(entry.operationId);
      const outcome = account.operations?.get(entry.operationId);
      if (account.operations !== undefined && outcome !== 'applied') {
        problems.push(
          `${accountId}: ledger has ${entry.operationId}, recorded as ${outcome ?? 'nothing'}`,
        );
      }
    }
    for (const [operationId, outcome] of account.operations ?? []) {
      if (outcome === 'applied' && !seen.has(operationId)) {
        problems.push(`${accountId}: ${operationId} is recorded as applied but not in the ledger`);
      }
    }

    // The stored balances, against the chain and the invariant.
    const stored = storedBalances(account.balances, defaultCurrency);
    for (const currency of stored.keys()) at(currency);
    for (const [currency, state] of running) {
      const where = `${accountId} ${currency}`;
      const { available, held } = stored.get(currency) ?? { available: initial, held: 0 };
      if (available !== state.available || held !== state.held) {
        problems.push(
          `${where}: stored ${available} available, ${held} held; its ledger makes ${state.available}, ${state.held}`,
        );
      }
      if (available < 0 || held < 0) {
        problems.push(`${where}: stored balance is negative (${available}, ${held})`);
      }
      if (available + held + state.captured - state.refunded !== initial) {
        problems.push(
          `${where}: available ${available} + held ${held} + captured ${state.captured} − refunded ${state.refunded} ≠ initial ${initial}`,
        );
      }
      const total = byCurrency.get(currency) ?? {
        accounts: 0,
        availableCents: 0,
        heldCents: 0,
        captured: 0,
        refunded: 0,
      };
      total.accounts++;
      total.availableCents += available;
      total.heldCents += held;
      total.captured += state.captured;
      total.refunded += state.refunded;
      byCurrency.set(currency, total);
    }
  }

  for (const [token, money] of byToken) {
    if (money.withdrawals + money.holds > 1) {
      problems.push(`token ${token} was charged ${money.withdrawals + money.holds} times`);
    }
    if (money.captures + money.releases > money.holds) {
      problems.push(
        `token ${token} settled ${money.captures + money.releases} hold(s) of ${money.holds}`,
      );
    }
    if (money.heldCents < 0) problems.push(`token ${token} released or captured more than it held`);
    if (money.refundedCents > money.capturedCents) {
      problems.push(
        `token ${token} was refunded ${money.refundedCents} of ${money.capturedCents} captured`,
      );
    }
  }
  return { problems, byToken, byCurrency, movements };
}

/** (available, held) per currency in a balances hash, a `balance` field being the default currency's. */
function storedBalances(
  hash: Readonly<Record<string, string>>,
  defaultCurrency: string,
): Map<string, { available: number; held: number }> {
  const balances = new Map<string, { available: number; held: number }>();
  const legacy = hash.balance;
  const parts = Object.entries(hash).flatMap(([field, value]) => {
    const [name, currency] = field.split(':');
    return currency === undefined ? [] : [{ name, currency, value: Number(value) }];
  });
  for (const { name, currency, value } of parts) {
    const entry = balances.get(currency) ?? { available: NaN, held: 0 };
    if (name === 'available') entry.available = value;
    if (name === 'held') entry.held = value;
    balances.set(currency, entry);
  }
  if (legacy !== undefined && !balances.has(defaultCurrency)) {
    balances.set(defaultCurrency, { available: Number(legacy), held: 0 });
  }
  return balances;
}

/**
 * What a token's state allows its money to be, or why it is not (null: it
 * agrees). States of the payment machine, internal steps included; a step
 * whose movement may or may not be in the ledger yet allows both.
 */
export function tokenMoneyProblem(status: string, money: TokenMoney | undefined): string | null {
  const m = money ?? noMoney();
  const charged = m.withdrawals + m.holds;
  const said = () =>
    `${status} with ${m.withdrawals} charge(s), ${m.holds} hold(s), ${m.captures} capture(s), ${m.releases} release(s), ${m.deposits} refund(s) (captured ${m.capturedCents}, refunded ${m.refundedCents}, held ${m.heldCents})`;
  const settled = m.captures + m.releases;
  let ok: boolean;
  switch (status) {
    case 'pending':
      ok = charged === 0;
      break;
    case 'charging':
    case 'authorizing':
      ok = charged <= 1 && settled === 0 && m.deposits === 0;
      break;
    case 'authorized':
      ok = m.holds === 1 && m.withdrawals === 0 && settled === 0 && m.deposits === 0;
      break;
    case 'capturing':
    case 'voiding':
      ok = m.holds === 1 && m.withdrawals === 0 && settled <= 1 && m.deposits === 0;
      break;
    case 'cancelled':
      // Cancelled before any capture: nothing captured, no hold left.
      ok = m.capturedCents === 0 && m.heldCents === 0 && m.deposits === 0;
      break;
    case 'processed':
      ok = charged === 1 && m.capturedCents > 0 && m.heldCents === 0 && m.deposits === 0;
      break;
    case 'partially_refunded':
      ok =
        charged === 1 &&
        m.heldCents === 0 &&
        m.refundedCents > 0 &&
        m.refundedCents < m.capturedCents;
      break;
    case 'refunding':
      ok = charged === 1 && m.capturedCents > 0 && m.heldCents === 0;
      break;
    case 'refunded':
      ok = charged === 1 && m.capturedCents > 0 && m.refundedCents === m.capturedCents;
      break;
    case 'expired':
      // Expired after any end but an authorization (which does not expire).
      ok = m.heldCents === 0;
      break;
    default:
      return `${status} is not a state of the payment machine`;
  }
  return ok ? null : said();
}
