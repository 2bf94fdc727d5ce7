/**
 * Runs `work` every `intervalMs`, each run `intervalMs` after the previous
 * one ended, on a timer that never keeps the process alive; a run's error is
 * left to whoever reads its result. Returns `stop`: no run starts after it,
 * not even after one still under way.
 */
export function repeatEvery(intervalMs: number, work: () => Promise<void>): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const next = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      work()
        .catch(() => undefined)
        .finally(next);
    }, intervalMs);
    timer.unref();
  };
  next();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
