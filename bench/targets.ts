/**
 * The targets (2 cores, load generator on the same cores, AOF everysec
 * unless said otherwise), each checked against the measurements with the gap
 * when missed and a reading of what bounded the run.
 */
import type { BenchResults } from './bench-results.ts';
import type { LoadRun } from './load-run.ts';

export interface TargetCheck {
  readonly target: string;
  /** Which run the verdict is based on. */
  readonly measuredOn: string;
  readonly measured: string;
  /** null when the scenario did not run. */
  readonly met: boolean | null;
  /** By how much it was missed. */
  readonly gap: string | null;
  /** What the measurements say limited it. */
  readonly bound: string | null;
}

const MIB = 1024 * 1024;

const number = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const withUnit = (value: string, unit: string) =>
  unit.startsWith('/') ? `${value}${unit}` : `${value} ${unit}`;

function shortfall(measured: number, target: number, unit: string): string {
  return `${withUnit(number(target - measured), unit)} short (${number((1 - measured / target) * 100, 1)} % below)`;
}

function excess(measured: number, limit: number, unit: string, digits = 1): string {
  return `${withUnit(number(measured - limit, digits), unit)} over (${number((measured / limit - 1) * 100, 1)} % above)`;
}

/** Reads a run's CPU figures: which process, if any, was saturated. */
export function boundOf(
  load: {
    readonly resources: LoadRun['load']['resources'];
    readonly machineCpuPercent: number | null;
  },
  cores: number,
): string {
  const usage = load.resources.filter((r) => r.cpuPercent !== null);
  const cpu = (name: string) => usage.find((r) => r.name === name)?.cpuPercent ?? 0;
  const busiest = usage
    .filter((r) => r.name.startsWith('api-') || r.name.startsWith('worker-'))
    .sort((a, b) => (b.cpuPercent ?? 0) - (a.cpuPercent ?? 0))[0];
  const ours = usage.reduce((sum, r) => sum + (r.cpuPercent ?? 0), 0);
  const machine = load.machineCpuPercent;
  const capacity = cores * 100;
  const figures = [
    ...usage.map((r) => `${r.name} ${number(r.cpuPercent ?? 0)} %`),
    ...(machine === null ? [] : [`whole machine ${number(machine)} % of ${capacity} %`]),
  ].join(', ');
  let reading: string;
  if (machine !== null && machine >= 0.9 * capacity && machine - ours >= 0.25 * capacity) {
    reading = `the machine's ${cores} cores were saturated, ${number(machine - ours)} % of a core by processes outside the bench: measure again on a quiet machine`;
  } else if ((machine ?? ours) >= 0.9 * capacity) {
    reading = `the machine's ${cores} cores are saturated, shared by the service, Redis and the load generator`;
  } else if (busiest !== undefined && (busiest.cpuPercent ?? 0) >= 90) {
    reading = `${busiest.name} is CPU-bound (its event loop is saturated)`;
  } else if (cpu('redis-server') >= 90) {
    reading = 'Redis is CPU-bound';
  } else {
    reading =
      'no process is saturated: the run is latency-bound (waits on Redis round trips, locks or fsync)';
  }
  return `${reading}; CPU: ${figures}`;
}

type Measured = Omit<BenchResults, 'targets' | 'finishedAt'>;

/** What the named operations cost in Redis, from the round-trip scenario. */
function costs(results: Measured, operations: readonly string[]): string | null {
  const found = (results.roundTrips?.operations ?? []).filter((op) =>
    operations.includes(op.operation),
  );
  if (found.length === 0) return null;
  return `Redis per request (in sequence): ${found
    .map(
      (op) =>
        `${op.operation} ${number(op.commands, 1)} commands ≈ ${number(op.socketReads, 1)} round trips`,
    )
    .join(', ')}`;
}

/** The new-payment profile's heaviest frames, idle left out. */
function profileTop(results: Measured): string | null {
  const frames = (results.profile?.topFrames ?? []).filter((f) => f.functionName !== '(idle)');
  if (frames.length === 0) return null;
  return `new-payment profile top: ${frames
    .slice(0, 4)
    .map(
      (f) =>
        `${f.functionName} ${number(f.selfPercent, 1)} %${
          f.calledFrom !== null
            ? ` (called from ${f.calledFrom})`
            : f.location === ''
              ? ''
              : ` (${f.location})`
        }`,
    )
    .join(', ')}`;
}

/** What one process answers when answering costs nothing but HTTP (the http-floor scenario). */
function httpFloor(results: Measured): string | null {
  const floor = results.httpFloor;
  if (floor === undefined || floor === null || floor.length === 0) return null;
  return `HTTP alone, one process on this machine: ${floor
    .map((run) => `${run.title} ${number(run.responsesPerSecond)}/s`)
    .join(', ')}`;
}

function joined(...parts: readonly (string | null)[]): string {
  return parts.filter((part) => part !== null).join('; ');
}

function best(runs: readonly LoadRun[]): LoadRun | undefined {
  return [...runs].sort((a, b) => b.okPerSecond - a.okPerSecond)[0];
}

function describeRun(run: LoadRun): string {
  const d = run.deployment;
  return `${run.scenario}, AOF ${d.appendfsync}, ${d.apiProcesses} process${d.apiProcesses > 1 ? 'es' : ''}`;
}

export function evaluateTargets(results: Measured): TargetCheck[] {
  const cores = results.environment.machine.cores;
  const runs = results.runs;
  const checks: TargetCheck[] = [];
  const missing = (target: string): TargetCheck => ({
    target,
    measuredOn: 'not run',
    measured: '—',
    met: null,
    gap: null,
    bound: null,
  });

  // New payments, everysec: throughput and p99 together, on the better of 1 and 2 processes.
  {
    const target = 'new payments ≥ 5,000/s with p99 ≤ 20 ms at 50 connections (AOF everysec)';
    const candidates = runs.filter(
      (r) => r.scenario === 'new-payments' && r.deployment.appendfsync === 'everysec',
    );
    const passing = candidates.filter((r) => r.okPerSecond >= 5_000 && r.load.latencyMs.p99 <= 20);
    const run = best(passing) ?? best(candidates);
    if (run === undefined) checks.push(missing(target));
    else {
      const gaps: string[] = [];
      if (run.okPerSecond < 5_000) gaps.push(shortfall(run.okPerSecond, 5_000, '/s'));
      if (run.load.latencyMs.p99 > 20) gaps.push(`p99 ${excess(run.load.latencyMs.p99, 20, 'ms')}`);
      checks.push({
        target,
        measuredOn: describeRun(run),
        measured: `${number(run.okPerSecond)}/s, p99 ${number(run.load.latencyMs.p99, 1)} ms`,
        met: gaps.length === 0,
        gap: gaps.length === 0 ? null : gaps.join('; '),
        bound: joined(
          boundOf(run.load, cores),
          httpFloor(results),
          costs(results, ['new payment']),
          profileTop(results),
        ),
      });
    }
  }

  {
    const target = 'new payments ≥ 2,000/s with AOF appendfsync always';
    const run = best(
      runs.filter((r) => r.scenario === 'new-payments' && r.deployment.appendfsync === 'always'),
    );
    if (run === undefined) checks.push(missing(target));
    else {
      const met = run.okPerSecond >= 2_000;
      checks.push({
        target,
        measuredOn: describeRun(run),
        measured: `${number(run.okPerSecond)}/s, p99 ${number(run.load.latencyMs.p99, 1)} ms`,
        met,
        gap: met ? null : shortfall(run.okPerSecond, 2_000, '/s'),
        bound: joined(
          boundOf(run.load, cores),
          httpFloor(results),
          costs(results, ['new payment']),
          profileTop(results),
        ),
      });
    }
  }

  {
    const target = 'contended pay/cancel ≥ 5,000 ops/s with zero invariant violations';
    const contended = runs.filter((r) => r.scenario === 'contended');
    const run = best(contended);
    if (run === undefined) checks.push(missing(target));
    else {
      const violations = contended.reduce((sum, r) => sum + r.invariants.violations, 0);
      const gaps: string[] = [];
      if (run.okPerSecond < 5_000) gaps.push(shortfall(run.okPerSecond, 5_000, 'ops/s'));
      if (violations > 0) gaps.push(`${violations} invariant violation(s)`);
      checks.push({
        target,
        measuredOn: describeRun(run),
        measured: `${number(run.okPerSecond)} ops/s, ${violations} violation(s) over ${contended.length} run(s)`,
        met: gaps.length === 0,
        gap: gaps.length === 0 ? null : gaps.join('; '),
        bound: joined(
          boundOf(run.load, cores),
          costs(results, ['new payment', 'replay', 'cancel with refund', 'payment after cancel']),
        ),
      });
    }
  }

  {
    const target = 'expiry ≥ 2,000 expiries/s with lateness p99 ≤ 1 s';
    const expiry = results.expiry;
    if (expiry === null) checks.push(missing(target));
    else {
      const capacity = expiry.backlog.expiriesPerSecond;
      const p99 = expiry.live.latenessMs?.p99 ?? Number.NaN;
      const gaps: string[] = [];
      if (!(capacity >= 2_000)) gaps.push(`capacity ${shortfall(capacity, 2_000, '/s')}`);
      if (!(p99 <= 1_000)) gaps.push(`lateness p99 ${excess(p99, 1_000, 'ms', 0)}`);
      const worker = expiry.backlog.resources.find((r) => r.name.startsWith('worker'));
      checks.push({
        target,
        measuredOn:
          `${number(expiry.tokens)} tokens, PAYMENT_EXPIRY_MS ${expiry.expiryMs}; rate from the backlog run, lateness from the live run` +
          (expiry.live.duePerSecond < 2_000
            ? ` (whose timers came due at only ${number(expiry.live.duePerSecond)}/s, the rate they were paid: lateness at 2,000/s due is not measured)`
            : ''),
        measured: `${number(capacity)} expiries/s (backlog); live: ${number(expiry.live.expiriesPerSecond)}/s for ${number(expiry.live.duePerSecond)}/s coming due, lateness p99 ${number(p99)} ms`,
        met: gaps.length === 0,
        gap: gaps.length === 0 ? null : gaps.join('; '),
        bound: joined(
          worker?.cpuPercent == null
            ? null
            : `while draining the backlog: ${boundOf(expiry.backlog, cores)}`,
          costs(results, ['expiry']),
        ),
      });
    }
  }

  {
    const target = 'API process RSS ≤ 150 MiB under load';
    let peak: { bytes: number; run: LoadRun } | null = null;
    for (const run of runs) {
      for (const usage of run.load.resources) {
        if (!usage.name.startsWith('api-') || usage.rssMaxBytes === null) continue;
        if (peak === null || usage.rssMaxBytes > peak.bytes)
          peak = { bytes: usage.rssMaxBytes, run };
      }
    }
    if (peak === null) checks.push(missing(target));
    else {
      const mib = peak.bytes / MIB;
      checks.push({
        target,
        measuredOn: `highest of every load run (${describeRun(peak.run)})`,
        measured: `${number(mib, 1)} MiB`,
        met: mib <= 150,
        gap: mib <= 150 ? null : excess(mib, 150, 'MiB'),
        bound: null,
      });
    }
  }

  {
    const target = '≤ 1 KiB of Redis memory per live token';
    const memory = results.redisMemory;
    if (memory === null) checks.push(missing(target));
    else {
      const bytes = memory.bytesPerToken;
      checks.push({
        target,
        measuredOn: `${number(memory.tokens)} processed tokens over ${memory.accounts} accounts (INFO used_memory delta)`,
        measured: `${number(bytes)} bytes per token`,
        met: bytes <= 1024,
        gap: bytes <= 1024 ? null : excess(bytes, 1024, 'bytes', 0),
        bound:
          memory.breakdown.length === 0
            ? null
            : `per token: ${memory.breakdown
                .slice(0, 4)
                .map((share) => `${share.kind} ${number(share.bytesPerToken)} B`)
                .join(', ')}; snapshot JSON ${number(memory.snapshotJsonBytes)} B` +
              (results.redisMemoryDefaults
                ? `; with Redis’s default hash encoding limit: ${number(results.redisMemoryDefaults.bytesPerToken)} B per token`
                : ''),
      });
    }
  }
  return checks;
}
