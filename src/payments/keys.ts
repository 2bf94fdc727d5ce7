/**
 * The Redis key layout. A token's keys share the hash tag `{token}` and an
 * account's keys share `{account:id}`, so each lives in one cluster slot and
 * one Lua script may touch them together.
 */
export interface Keys {
  /** Hash: v (version), l (lifeId), m (machine version), s (snapshot JSON). */
  readonly state: (token: string) => string;
  /** Redlock resource for the token. */
  readonly lock: (token: string) => string;
  /** Sorted set of tokens whose effects may not have completed, scored by when. */
  readonly outbox: string;
  /** Sorted set per state of the tokens in it, by last write; and their removal deadlines. */
  readonly stateIndex: (state: string) => string;
  readonly indexRemovals: string;
  /** Sorted sets of tokens with live timers (by earliest due time) and of unreadable records. */
  readonly timerDues: string;
  readonly unreadable: string;
  /** Base of each tenant's part of the index: `PARTITIONS:TENANT:index:STATE`, `…:outbox`. */
  readonly partitions: string;
  readonly account: (accountId: string) => string;
  /** Hash: operation id → outcome, of the account's recent movements (see Ledger). */
  readonly accountOperations: (accountId: string) => string;
  /** Sorted set: the same operation ids, scored by when they were applied. */
  readonly accountOperationTimes: (accountId: string) => string;
  readonly accountLedger: (accountId: string) => string;
  /** Hash: the store's identity (see StoreIdentity). */
  readonly store: string;
  /** BullMQ's own prefix for the expiry queue. */
  readonly queuePrefix: string;
}

export function createKeys(prefix: string): Keys {
  return {
    state: (token) => `${prefix}:{${token}}:state`,
    lock: (token) => `${prefix}:{${token}}:lock`,
    outbox: `${prefix}:outbox`,
    stateIndex: (state) => `${prefix}:index:${state}`,
    indexRemovals: `${prefix}:index-removals`,
    timerDues: `${prefix}:timer-dues`,
    unreadable: `${prefix}:unreadable`,
    partitions: `${prefix}:tenant`,
    account: (id) => `${prefix}:{account:${id}}:balance`,
    accountOperations: (id) => `${prefix}:{account:${id}}:ops`,
    accountOperationTimes: (id) => `${prefix}:{account:${id}}:ops-at`,
    accountLedger: (id) => `${prefix}:{account:${id}}:ledger`,
    store: `${prefix}:store`,
    queuePrefix: `${prefix}:bull`,
  };
}

/** Where the engine keeps payment records and their index (the engine's MachineKeys). */
export function paymentRecordKeys(keys: Keys) {
  return {
    record: keys.state,
    lock: keys.lock,
    outbox: keys.outbox,
    index: keys.stateIndex,
    removals: keys.indexRemovals,
    timers: keys.timerDues,
    unreadable: keys.unreadable,
    partitions: keys.partitions,
  };
}
