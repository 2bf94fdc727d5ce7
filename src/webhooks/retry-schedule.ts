/**
 * When a failed webhook delivery is tried again: after the n-th failure,
 * PAYSTATE_WEBHOOK_RETRY_BASE_MS · 2^(n−1), never more than an hour, for as
 * long as the event is younger than PAYSTATE_WEBHOOK_RETRY_FOR_MS. Pure:
 * the caller owns the clock and the timers.
 */

/** The longest wait between two attempts. */
export const MAX_RETRY_DELAY_MS = 3_600_000;

export interface RetryPolicy {
  /** Delay after the first failure. */
  readonly baseMs: number;
  /** Attempts stop once the next would start later than this after the event. */
  readonly retryForMs: number;
}

function checkPolicy({ baseMs, retryForMs }: RetryPolicy): void {
  if (!Number.isSafeInteger(baseMs) || baseMs < 1) {
    throw new RangeError(`baseMs must be a positive whole number, got ${baseMs}`);
  }
  if (!Number.isSafeInteger(retryForMs) || retryForMs < 1) {
    throw new RangeError(`retryForMs must be a positive whole number, got ${retryForMs}`);
  }
}

/** The wait after the `failures`-th failure (1, 2, …): base doubling, capped at an hour. */
export function retryDelayMs(failures: number, baseMs: number): number {
  if (!Number.isSafeInteger(failures) || failures < 1) {
    throw new RangeError(`failures must be a whole number from 1, got ${failures}`);
  }
  // 2^52 · 1 ms already passes the cap: no exponent beyond it is computed.
  const doubled = baseMs * 2 ** Math.min(failures - 1, 52);
  return Math.min(doubled, MAX_RETRY_DELAY_MS);
}

/**
 * When to attempt again after the `failures`-th failure, which ended at
 * `failedAt`; null when that would be later than `createdAt + retryForMs`
 * (the delivery is given up). All times epoch ms.
 */
export function nextAttemptAt(
  attempt: { readonly createdAt: number; readonly failures: number; readonly failedAt: number },
  policy: RetryPolicy,
): number | null {
  checkPolicy(policy);
  const at = attempt.failedAt + retryDelayMs(attempt.failures, policy.baseMs);
  return at > attempt.createdAt + policy.retryForMs ? null : at;
}

/**
 * The whole schedule as offsets from the event's creation, for an endpoint
 * that fails every attempt at once: the first attempt at 0, then each retry.
 */
export function retryOffsets(policy: RetryPolicy): number[] {
  checkPolicy(policy);
  const offsets = [0];
  for (let failures = 1; ; failures += 1) {
    const next = nextAttemptAt(
      { createdAt: 0, failures, failedAt: offsets[offsets.length - 1] ?? 0 },
      policy,
    );
    if (next === null) return offsets;
    offsets.push(next);
  }
}
