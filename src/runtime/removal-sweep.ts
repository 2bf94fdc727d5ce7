/**
 * Removes keys whose records reached their removal deadline (a final state
 * kept for its retention): every `intervalMs`, each machine's due keys leave
 * with everything the runtime wrote for them (StateIndex.removeDue), a batch
 * at a time until none is due. The index is pruned here, by the worker, not
 * by its readers.
 */
export interface RemovalSweep {
  /** Runs one pass now; resolves with the number of keys removed. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

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
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;

  const pass = async (): Promise<number> => {
    let removed = 0;
    for (const target of options.targets) {
      try {
        for (;;) {
          if (stopped) return removed;
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

  const runOnce = (): Promise<number> => {
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void runOnce().finally(schedule);
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
