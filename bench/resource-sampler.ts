/** Samples RSS and CPU time of named processes while a load runs. */
import { performance } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { readCpuSeconds, readMachineTicks, readRssBytes } from './process-stats.ts';

export interface WatchedProcess {
  readonly name: string;
  readonly pid: number;
}

export interface ResourceUsage {
  readonly name: string;
  /** CPU time over the window as a percentage of one core (200 = two cores busy). */
  readonly cpuPercent: number | null;
  readonly rssMaxBytes: number | null;
  readonly rssMeanBytes: number | null;
  readonly rssSamples: number;
}

export interface ResourceReport {
  readonly processes: readonly ResourceUsage[];
  /**
   * CPU time of the whole machine (every process, ours or not) over the
   * window, as a percentage of one core: near cores × 100 means saturated.
   */
  readonly machineCpuPercent: number | null;
}

export interface ResourceSampler {
  stop(): ResourceReport;
}

export function sampleResources(
  processes: readonly WatchedProcess[],
  intervalMs = 250,
): ResourceSampler {
  const started = performance.now();
  const cpuAtStart = processes.map((p) => readCpuSeconds(p.pid));
  const machineAtStart = readMachineTicks();
  const rss = processes.map(() => [] as number[]);
  const sample = () => {
    processes.forEach((p, i) => {
      const bytes = readRssBytes(p.pid);
      if (bytes !== null) rss[i]?.push(bytes);
    });
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const seconds = (performance.now() - started) / 1000;
      const machine = readMachineTicks();
      const machineCpuPercent =
        machineAtStart === null || machine === null || machine.total <= machineAtStart.total
          ? null
          : ((machine.busy - machineAtStart.busy) / (machine.total - machineAtStart.total)) *
            availableParallelism() *
            100;
      const usage = processes.map((p, i) => {
        const before = cpuAtStart[i] ?? null;
        const after = readCpuSeconds(p.pid);
        const samples = rss[i] ?? [];
        return {
          name: p.name,
          cpuPercent:
            before === null || after === null || seconds <= 0
              ? null
              : ((after - before) / seconds) * 100,
          rssMaxBytes: samples.length === 0 ? null : Math.max(...samples),
          rssMeanBytes:
            samples.length === 0 ? null : samples.reduce((a, b) => a + b, 0) / samples.length,
          rssSamples: samples.length,
        };
      });
      return { processes: usage, machineCpuPercent };
    },
  };
}
