/**
 * The emulator's fault rules, set at run time through `POST /_emulator/faults`
 * (docs/processor.md). A rule matches requests by path, method, account and
 * amount; `nth` makes it wait for the nth matching request and `times` bounds
 * how often it fires. The first rule that fires wins; a request no rule
 * fires for is served normally.
 */

export type FaultKind =
  /** Wait `ms` before serving (the idempotency key is in use meanwhile). */
  | 'delay'
  /** Apply, then hold the answer for `ms` (past the client's timeout). */
  | 'timeout'
  /** Answer 500 without applying. */
  | '5xx_before'
  /** Apply, then answer 500. */
  | '5xx_after'
  /** Apply, then destroy the socket without answering. */
  | 'lose_response'
  /** Destroy the socket without applying. */
  | 'reset'
  /** Answer 429 with Retry-After without applying. */
  | 'rate_limit'
  /** A new charge is declined (`reason`, default `card_declined`). */
  | 'decline'
  /** A new charge answers `processing` and settles to `settle` after `ms`. */
  | 'processing';

export const FAULT_KINDS: readonly FaultKind[] = [
  'delay',
  'timeout',
  '5xx_before',
  '5xx_after',
  'lose_response',
  'reset',
  'rate_limit',
  'decline',
  'processing',
];

/** Kinds that only mean something for a new charge (`POST /charges`). */
const CHARGE_ONLY: readonly FaultKind[] = ['decline', 'processing'];

export interface FaultMatch {
  /** A path; `*` stands for one segment (`/charges/*\/capture`). */
  readonly path?: string;
  readonly method?: string;
  readonly account?: string;
  readonly amount?: number;
  /** Fire from the nth matching request on (1 = the first). */
  readonly nth?: number;
}

export interface FaultRule {
  readonly id: string;
  readonly match: FaultMatch;
  readonly fault: FaultKind;
  readonly ms?: number;
  /** How many requests it fires for; absent: every matching one. */
  readonly times?: number;
  /** `decline`: the failure reason. */
  readonly reason?: string;
  /** `processing`: what the charge settles to (default succeeded, or requires_capture). */
  readonly settle?: 'succeeded' | 'declined';
  /** `processing`: deliver each webhook twice, with the same event id. */
  readonly duplicate?: boolean;
  /** `processing`: deliver the settling event before `charge.processing`. */
  readonly outOfOrder?: boolean;
}

export interface RequestFacts {
  readonly method: string;
  readonly path: string;
  /** True for `POST /charges`, the only request a decline or processing fault fits. */
  readonly newCharge: boolean;
  readonly account?: string | undefined;
  readonly amount?: number | undefined;
}

interface ActiveRule {
  readonly rule: FaultRule;
  seen: number;
  fired: number;
}

const RULE_FIELDS = new Set([
  'match',
  'fault',
  'ms',
  'times',
  'reason',
  'settle',
  'duplicate',
  'outOfOrder',
]);
const MATCH_FIELDS = new Set(['path', 'method', 'account', 'amount', 'nth']);
const MAX_FAULT_MS = 600_000;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const positiveInteger = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) >= 1;

/** A rule from its JSON form, or the reason it is not one. */
export function parseFaultRule(value: unknown, id: string): FaultRule | string {
  if (!isRecord(value)) return 'a fault rule must be a JSON object';
  for (const field of Object.keys(value)) {
    if (!RULE_FIELDS.has(field)) return `unknown field "${field}" in a fault rule`;
  }
  const { match = {}, fault, ms, times, reason, settle, duplicate, outOfOrder } = value;
  if (!FAULT_KINDS.includes(fault as FaultKind)) {
    return `fault must be one of ${FAULT_KINDS.join(', ')}`;
  }
  if (!isRecord(match)) return 'match must be an object';
  for (const field of Object.keys(match)) {
    if (!MATCH_FIELDS.has(field)) return `unknown field "${field}" in match`;
  }
  if (match.path !== undefined && (typeof match.path !== 'string' || !match.path.startsWith('/'))) {
    return 'match.path must be a path starting with /';
  }
  if (match.method !== undefined && typeof match.method !== 'string') {
    return 'match.method must be a string';
  }
  if (match.account !== undefined && typeof match.account !== 'string') {
    return 'match.account must be a string';
  }
  if (match.amount !== undefined && !positiveInteger(match.amount)) {
    return 'match.amount must be a positive integer';
  }
  if (match.nth !== undefined && !positiveInteger(match.nth)) {
    return 'match.nth must be a positive integer';
  }
  if (ms !== undefined && !(Number.isSafeInteger(ms) && (ms as number) >= 0)) {
    return 'ms must be a non-negative integer';
  }
  if (typeof ms === 'number' && ms > MAX_FAULT_MS) return `ms must be at most ${MAX_FAULT_MS}`;
  if (times !== undefined && !positiveInteger(times)) return 'times must be a positive integer';
  if (reason !== undefined && (typeof reason !== 'string' || reason === '')) {
    return 'reason must be a non-empty string';
  }
  if (settle !== undefined && settle !== 'succeeded' && settle !== 'declined') {
    return 'settle must be succeeded or declined';
  }
  if (duplicate !== undefined && typeof duplicate !== 'boolean') {
    return 'duplicate must be a boolean';
  }
  if (outOfOrder !== undefined && typeof outOfOrder !== 'boolean') {
    return 'outOfOrder must be a boolean';
  }
  return {
    id,
    match: {
      ...(match.path === undefined ? {} : { path: match.path }),
      ...(match.method === undefined ? {} : { method: match.method.toUpperCase() }),
      ...(match.account === undefined ? {} : { account: match.account }),
      ...(match.amount === undefined ? {} : { amount: match.amount }),
      ...(match.nth === undefined ? {} : { nth: match.nth }),
    },
    fault: fault as FaultKind,
    ...(ms === undefined ? {} : { ms: ms as number }),
    ...(times === undefined ? {} : { times }),
    ...(reason === undefined ? {} : { reason }),
    ...(settle === undefined ? {} : { settle }),
    ...(duplicate === undefined ? {} : { duplicate }),
    ...(outOfOrder === undefined ? {} : { outOfOrder }),
  };
}

function pathMatches(pattern: string, path: string): boolean {
  const want = pattern.split('/');
  const got = path.split('/');
  return want.length === got.length && want.every((part, i) => part === '*' || part === got[i]);
}

function matches(rule: FaultRule, facts: RequestFacts): boolean {
  const { match } = rule;
  if (CHARGE_ONLY.includes(rule.fault) && !facts.newCharge) return false;
  if (match.path !== undefined && !pathMatches(match.path, facts.path)) return false;
  if (match.method !== undefined && match.method !== facts.method) return false;
  if (match.account !== undefined && match.account !== facts.account) return false;
  if (match.amount !== undefined && match.amount !== facts.amount) return false;
  return true;
}

export class FaultTable {
  #rules: ActiveRule[] = [];
  #nextId = 1;

  add(value: unknown): FaultRule | string {
    const rule = parseFaultRule(value, `fault_${this.#nextId}`);
    if (typeof rule === 'string') return rule;
    this.#nextId += 1;
    this.#rules.push({ rule, seen: 0, fired: 0 });
    return rule;
  }

  list(): { rule: FaultRule; seen: number; fired: number }[] {
    return this.#rules.map(({ rule, seen, fired }) => ({ rule, seen, fired }));
  }

  remove(id: string): boolean {
    const before = this.#rules.length;
    this.#rules = this.#rules.filter(({ rule }) => rule.id !== id);
    return this.#rules.length < before;
  }

  clear(): void {
    this.#rules = [];
  }

  /**
   * The rule that fires for this request, if any. Every matching rule counts
   * the request (so `nth` counts requests, not firings of rules before it).
   */
  take(facts: RequestFacts): FaultRule | null {
    let chosen: FaultRule | null = null;
    for (const active of this.#rules) {
      if (!matches(active.rule, facts)) continue;
      active.seen += 1;
      const nth = active.rule.match.nth ?? 1;
      const times = active.rule.times ?? Number.POSITIVE_INFINITY;
      if (chosen === null && active.seen >= nth && active.fired < times) {
        active.fired += 1;
        chosen = active.rule;
      }
    }
    return chosen;
  }
}
