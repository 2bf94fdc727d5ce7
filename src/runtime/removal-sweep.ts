import { startPeriodicPass, type PeriodicPass } from './periodic-pass.ts';

/**
 * Removes keys whose records reached their removal deadline (a final state
 * kept for its retention): every `intervalMs`, each machine's due keys leave
 * with everything the runtime wrote for them (StateIndex.removeDue), a batch
 * at a time until none is due. The index is pruned here, by the worker, not
 * by its readers.
 */
/** `runOnce` resolves with the number of keys removed. */
export type RemovalSweep = PeriodicPass;

export interface RemovalTarget {
  readonly name: string;
  removeDue(limit: number): Promise<number>;
}

const BATCH = 500;

export function startRemovalSweep(options: {
  readonly targets: readonly RemovalTarget[];
  readonly intervalMs: number;
  readonly onError: (error: unknown, where?: { machine: string }) => void;
}): RemovalSweep {
  const pass = async (stopped: () => boolean): Promise<number> => {
    let removed = 0;
    for (const target of options.targets) {
      try {
        for (;;) {
          if (stopped()) return removed;
          const n = await target.removeDue(BATCH);
          removed += n;
          if (n < BATCH) break;
        }
      } catch (error) {
        options.onError(error, { machine: target.name });
      }
    }
    return removed;
  };

  return startPeriodicPass(options.intervalMs, pass, (error) => {
    options.onError(error);
  });
}
