/**
 * Finishes what crashed commands left owed for keys nobody touches again:
 * every `intervalMs`, each key in a machine's outbox for longer than
 * `graceMs` (live commands are left alone) is recovered under its lock.
 */
export interface RecoverySweep {
  /** Runs one pass now; resolves with the number of keys recovered. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

export interface SweepTarget {
  readonly name: string;
  recover(key: string): Promise<void>;
  listOwed(before: number, limit: number): Promise<string[]>;
}

export function startRecoverySweep(options: {
  readonly targets: readonly SweepTarget[];
  readonly intervalMs: number;
  readonly graceMs: number;
  /** Redis's time (RedisClock.now). */
  readonly now: () => number;
  readonly batchSize?: number;
  readonly onError: (error: unknown, where?: { machine: string; key: string }) => void;
}): RecoverySweep {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;

  const pass = async (): Promise<number> => {
    let recovered = 0;
    for (const target of options.targets) {
      const keys = await target.listOwed(options.now() - options.graceMs, options.batchSize ?? 100);
      for (const key of keys) {
        if (stopped) return recovered;
        try {
          await target.recover(key);
          recovered++;
        } catch (error) {
          options.onError(error, { machine: target.name, key });
        }
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
