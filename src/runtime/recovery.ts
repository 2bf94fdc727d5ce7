import type { PaymentRuntime } from './payment-runtime.ts';
import type { SnapshotStore } from './snapshot-store.ts';

/**
 * Finishes what crashed requests left owed for tokens nobody touches again:
 * every `intervalMs`, each token in the outbox for longer than `graceMs` (so
 * live requests are left alone) is recovered under its lock.
 */
export interface RecoverySweep {
  /** Runs one pass now; resolves with the number of tokens recovered. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

export function startRecoverySweep(options: {
  runtime: PaymentRuntime;
  store: SnapshotStore;
  intervalMs: number;
  graceMs: number;
  clock: () => number;
  batchSize?: number;
  onError: (error: unknown, token?: string) => void;
}): RecoverySweep {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;

  const pass = async (): Promise<number> => {
    const tokens = await options.store.listOwed(
      options.clock() - options.graceMs,
      options.batchSize ?? 100,
    );
    let recovered = 0;
    for (const token of tokens) {
      if (stopped) break;
      try {
        await options.runtime.recover(token);
        recovered++;
      } catch (error) {
        options.onError(error, token);
      }
    }
    return recovered;
  };

  const runOnce = async (): Promise<number> => {
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      runOnce()
        .catch((error: unknown) => {
          options.onError(error);
        })
        .finally(schedule);
    }, options.intervalMs);
    timer.unref();
  };
  schedule();

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}
