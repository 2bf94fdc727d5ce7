/**
 * Idempotency keys as the emulator keeps them: a key is taken when its
 * first request starts and stays in use (409 to any other request with it)
 * until that request has applied or given up. A request that applied leaves
 * the key bound to its parameters: the same parameters again are answered
 * from the current state (a replay), other parameters are refused (400).
 * A request that applied nothing frees the key, so a retry starts afresh.
 */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
}

type KeyRecord =
  | { readonly fingerprint: string; readonly state: 'in_flight' }
  | { readonly fingerprint: string; readonly state: 'done'; readonly replay: () => Answer };

export type KeyClaim =
  | { readonly kind: 'claimed' }
  | { readonly kind: 'replay'; readonly answer: Answer }
  | { readonly kind: 'in_use' }
  | { readonly kind: 'reused' };

export class IdempotencyKeys {
  readonly #keys = new Map<string, KeyRecord>();

  claim(key: string, fingerprint: string): KeyClaim {
    const record = this.#keys.get(key);
    if (record === undefined) {
      this.#keys.set(key, { fingerprint, state: 'in_flight' });
      return { kind: 'claimed' };
    }
    if (record.fingerprint !== fingerprint) return { kind: 'reused' };
    if (record.state === 'in_flight') return { kind: 'in_use' };
    return { kind: 'replay', answer: record.replay() };
  }

  /** The request with `key` applied; later requests with it are answered by `replay`. */
  complete(key: string, replay: () => Answer): void {
    const record = this.#keys.get(key);
    if (record !== undefined) this.#keys.set(key, { ...record, state: 'done', replay });
  }

  /** The request with `key` applied nothing. */
  release(key: string): void {
    if (this.#keys.get(key)?.state === 'in_flight') this.#keys.delete(key);
  }

  inFlight(key: string): boolean {
    return this.#keys.get(key)?.state === 'in_flight';
  }

  clear(): void {
    this.#keys.clear();
  }
}
