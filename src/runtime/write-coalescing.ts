/** Moved to the engine; kept so existing imports keep working. */
export * from '../engine/redis/write-coalescing.ts';
