import { repeatEvery } from './redis/repeat.ts';

/** A pass the worker runs every so often, or at once on demand. */
export interface PeriodicPass {
  /** Runs one pass now (joins the one under way); resolves with what it counted. */
  runOnce(): Promise<number>;
  /** No pass starts after it; waits for the one under way, which ends early. */
  stop(): Promise<void>;
}

/**
 * Runs `pass` every `intervalMs` (each `intervalMs` after the previous one
 * ended) and on demand, one at a time. `pass` is told whether the sweep was
 * stopped, to end early; a pass that fails is reported to `onError`.
 */
export function startPeriodicPass(
  intervalMs: number,
  pass: (stopped: () => boolean) => Promise<number>,
  onError: (error: unknown) => void,
): PeriodicPass {
  let running: Promise<number> | undefined;
  let stopped = false;
  const runOnce = (): Promise<number> => {
    running ??= pass(() => stopped).finally(() => {
      running = undefined;
    });
    return running;
  };
  const stopRepeating = repeatEvery(intervalMs, () => runOnce().then(() => undefined, onError));
  return {
    runOnce,
    async stop() {
      stopped = true;
      stopRepeating();
      await running?.catch(() => undefined);
    },
  };
}
