/**
 * Everything the bench starts (service processes, redis-servers, temporary
 * directories) registers how to undo itself here, so an error or Ctrl-C never
 * leaves a process or a Redis behind.
 */
type Task = () => Promise<void> | void;

const tasks = new Set<Task>();
let stopping = false;

/** True once SIGINT / SIGTERM arrived: start nothing new. */
export function interrupted(): boolean {
  return stopping;
}

/** Throws when the run was interrupted; call before starting anything. */
export function assertNotInterrupted(): void {
  if (stopping) throw new Error('interrupted');
}

/** Registers `task`; the returned function unregisters it (once it ran normally). */
export function onCleanup(task: Task): () => void {
  tasks.add(task);
  return () => {
    tasks.delete(task);
  };
}

let draining: Promise<void> = Promise.resolve();

/**
 * Runs every registered task, newest first, each at most once; never throws.
 * Calls queue behind each other, so whoever awaits it knows everything
 * registered so far is undone.
 */
export function cleanupAll(): Promise<void> {
  draining = draining.then(async () => {
    const pending = [...tasks].reverse();
    tasks.clear();
    for (const task of pending) {
      try {
        await task();
      } catch (error) {
        console.error(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  });
  return draining;
}

/** On SIGINT / SIGTERM: clean up, then exit with the conventional 128 + signal number. */
export function cleanUpOnSignals(): void {
  const handle = (signal: NodeJS.Signals, code: number) => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${signal}: stopping the service processes and redis-servers…`);
    // Twice: something that was starting when the signal came registers itself late.
    void cleanupAll()
      .then(() => new Promise((resolve) => setTimeout(resolve, 200)))
      .then(cleanupAll)
      .finally(() => process.exit(code));
  };
  process.on('SIGINT', () => {
    handle('SIGINT', 130);
  });
  process.on('SIGTERM', () => {
    handle('SIGTERM', 143);
  });
}
