/** Moved to the engine (as the key lock); kept so existing imports keep working. */
export {
  RedlockKeyLock as RedlockTokenLock,
  type Held,
  type KeyLock as TokenLock,
  type RedlockKeyLockOptions as RedlockTokenLockOptions,
} from '../engine/redis/key-lock.ts';
