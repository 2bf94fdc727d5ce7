import type { Redis } from 'ioredis';
import { clusterOf } from './cluster.ts';
import { repeatEvery } from './repeat.ts';

/**
 * Redis's `maxmemory-policy` as `CONFIG GET` reads it. Throws where `CONFIG`
 * is refused (managed Redis) or Redis does not answer.
 */
export async function maxmemoryPolicy(redis: Redis): Promise<string> {
  const reply = (await redis.config('GET', 'maxmemory-policy')) as unknown[];
  if (typeof reply[1] !== 'string') throw new Error('Redis did not return it');
  return reply[1];
}

/**
 * Watches Redis's `maxmemory-policy` while the process runs. Anything but
 * `noeviction` lets a full Redis delete keys silently: a record, an
 * operation id or a timer, and a key that is gone makes a finished command
 * look new (a payment charged twice). Start-up refuses such a Redis; this
 * notices one changed afterwards (`CONFIG SET`), so that requests can be
 * refused until it is set back.
 *
 * Where `CONFIG` is refused (managed Redis) or Redis does not answer, the
 * last known state stands: nothing is concluded from an error.
 */
export class EvictionPolicyWatch {
  private policy: string | null = null;
  private stopWatching: () => void = () => undefined;
  private checking: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly events: {
      /** Called when an evicting policy is seen, and when it is gone again (`null`). */
      changed?: (policy: string | null) => void;
    } = {},
  ) {}

  /** The evicting policy last seen on some node, or null while none is. */
  get evicting(): string | null {
    return this.policy;
  }

  /** Reads the policy of every master (one Redis: that one) once. */
  async check(): Promise<void> {
    this.checking ??= this.readOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async readOnce(): Promise<void> {
    const nodes = clusterOf(this.redis)?.nodes('master') ?? [this.redis];
    const policies = await Promise.all(
      nodes.map(async (node) => {
        try {
          return await maxmemoryPolicy(node);
        } catch {
          return null;
        }
      }),
    );
    const read = policies.filter((policy): policy is string => policy !== null);
    const evicting = read.find((policy) => policy !== 'noeviction') ?? null;
    // All clear only when every node said so.
    if (evicting === null && read.length < nodes.length) return;
    if (evicting === this.policy) return;
    this.policy = evicting;
    this.events.changed?.(evicting);
  }

  /** Checks every `intervalMs` until stop(). */
  watch(intervalMs: number): void {
    this.stopWatching();
    this.stopWatching = repeatEvery(intervalMs, () => this.check());
  }

  stop(): void {
    this.stopWatching();
  }
}
