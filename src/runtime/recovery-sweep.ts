import { startPeriodicPass, type PeriodicPass } from './periodic-pass.ts';

/**
 * Finishes what crashed commands left owed for keys nobody touches again:
 * every `intervalMs`, each key in a machine's outbox for longer than
 * `graceMs` (live commands are left alone) is recovered under its lock.
 *
 * The same pass re-arms timers whose job is gone: each key whose earliest
 * live timer was due more than `graceMs` ago (the machine's timer dues, kept
 * by the writes) has the jobs of its due timers looked up, and those that
 * are missing (or failed for good) armed again, by their deterministic ids.
 *
 * A record that cannot be read is never recovered nor dropped: it stays in
 * the outbox and the dues until an operator resolves it. Each pass first
 * looks again at the keys noted unreadable (forgetting those resolved), then
 * leaves them out of its batches, so they cannot hold up the others.
 */
/** `runOnce` resolves with the number of keys recovered. */
export type RecoverySweep = PeriodicPass;

export interface SweepTarget {
  readonly name: string;
  recover(key: string): Promise<void>;
  listOwed(before: number, limit: number): Promise<string[]>;
  listDueTimers(before: number, limit: number): Promise<string[]>;
  rearmOverdue(key: string, before: number): Promise<number>;
  listUnreadable(limit: number): Promise<string[]>;
  stillUnreadable(key: string): Promise<boolean>;
}

/**
 * How many unreadable records (times the batch) a pass looks at again and
 * leaves out: beyond that many, the rest take places in every batch.
 */
const UNREADABLE_FACTOR = 10;

export function startRecoverySweep(options: {
  readonly targets: readonly SweepTarget[];
  readonly intervalMs: number;
  readonly graceMs: number;
  /** Redis's time (RedisClock.now). */
  readonly now: () => number;
  readonly batchSize?: number;
  readonly onError: (error: unknown, where?: { machine: string; key: string }) => void;
  /** Told how many of a key's timers were armed again (their jobs were gone). */
  readonly onRearmed?: (machine: string, count: number) => void;
}): RecoverySweep {
  const batch = options.batchSize ?? 100;

  /** Runs `work` for each key, reporting failures but those of records known unreadable. */
  const each = async (
    target: SweepTarget,
    keys: readonly string[],
    unreadable: ReadonlySet<string>,
    stopped: () => boolean,
    work: (key: string) => Promise<void>,
  ): Promise<void> => {
    for (const key of keys.filter((k) => !unreadable.has(k)).slice(0, batch)) {
      if (stopped()) return;
      try {
        await work(key);
      } catch (error) {
        // The first sight of an unreadable record is reported; it is noted
        // (by the machine) and left out of later passes' batches.
        options.onError(error, { machine: target.name, key });
      }
    }
  };

  const pass = async (stopped: () => boolean): Promise<number> => {
    let recovered = 0;
    for (const target of options.targets) {
      const before = options.now() - options.graceMs;
      const unreadable = new Set<string>();
      for (const key of await target.listUnreadable(batch * UNREADABLE_FACTOR)) {
        if (stopped()) return recovered;
        try {
          if (await target.stillUnreadable(key)) unreadable.add(key);
        } catch (error) {
          options.onError(error, { machine: target.name, key });
          unreadable.add(key);
        }
      }
      const owed = await target.listOwed(before, batch + unreadable.size);
      await each(target, owed, unreadable, stopped, async (key) => {
        await target.recover(key);
        recovered++;
      });
      const due = await target.listDueTimers(before, batch + unreadable.size);
      await each(target, due, unreadable, stopped, async (key) => {
        const rearmed = await target.rearmOverdue(key, before);
        if (rearmed > 0) options.onRearmed?.(target.name, rearmed);
      });
    }
    return recovered;
  };

  return startPeriodicPass(options.intervalMs, pass, (error) => {
    options.onError(error);
  });
}
