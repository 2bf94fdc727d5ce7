/**
 * `npm run bench`: every scenario, then bench/results/latest.json and
 * docs/benchmarks.md. `npm run bench:smoke`: every scenario for a moment,
 * results in bench/results/smoke.json only. `--only a,b` runs some scenarios
 * (results in bench/results/partial.json, the doc untouched). `--report`
 * runs nothing: it regenerates docs/benchmarks.md from latest.json.
 *
 * Exits non-zero when a scenario crashes, a service process dies, or an
 * invariant is violated; never because of a timing.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import type { BenchContext } from './bench-context.ts';
import type { BenchResults } from './bench-results.ts';
import { cleanUpOnSignals, cleanupAll, interrupted } from './cleanup.ts';
import { describeEnvironment, loadAverage } from './environment.ts';
import type { LoadRun } from './load-run.ts';
import { previousNotes, renderReport } from './report.ts';
import { runCancelRefunds } from './scenarios/cancel-refunds.ts';
import { runContended } from './scenarios/contended.ts';
import { runExpiry, type ExpiryResult } from './scenarios/expiry.ts';
import { runHttpFloor, type HttpFloorRun } from './scenarios/http-floor.ts';
import { runNewPaymentProfile, type NewPaymentProfile } from './scenarios/new-payment-profile.ts';
import { runNewPayments } from './scenarios/new-payments.ts';
import { runRedisMemory, type RedisMemoryResult } from './scenarios/redis-memory.ts';
import { runReplays } from './scenarios/replays.ts';
import { runRoundTrips, type RoundTripResult } from './scenarios/round-trips.ts';
import { buildService, ROOT } from './service-process.ts';
import { FULL, SMOKE } from './settings.ts';
import { evaluateTargets } from './targets.ts';

const SCENARIOS = [
  'round-trips',
  'new-payments',
  'replays',
  'cancel-refunds',
  'contended',
  'one-account',
  'expiry',
  'redis-memory',
  'http-floor',
  'profile',
] as const;
type Scenario = (typeof SCENARIOS)[number];

/** The whole run is stopped past this, so a hang can never keep CI waiting. */
const WATCHDOG_MS = { full: 30 * 60_000, smoke: 5 * 60_000 };

function parseArgs(argv: readonly string[]): {
  smoke: boolean;
  only: Scenario[] | null;
  reportOnly: boolean;
} {
  let smoke = false;
  let reportOnly = false;
  let only: Scenario[] | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--smoke') smoke = true;
    else if (arg === '--report') reportOnly = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const list = arg === '--only' ? (argv[++i] ?? '') : arg.slice('--only='.length);
      only = list.split(',').map((name) => {
        if (!(SCENARIOS as readonly string[]).includes(name)) {
          throw new Error(`unknown scenario "${name}"; scenarios: ${SCENARIOS.join(', ')}`);
        }
        return name as Scenario;
      });
    } else {
      throw new Error(
        `unknown argument "${arg}"; use --smoke, --only ${SCENARIOS.join(',')}, or --report`,
      );
    }
  }
  return { smoke, only, reportOnly };
}

async function writeFormatted(path: string, text: string, parser: 'json' | 'markdown') {
  const options = (await resolveConfig(path)) ?? {};
  writeFileSync(path, await format(text, { ...options, parser }));
}

const LATEST = join(ROOT, 'bench', 'results', 'latest.json');
const DOC = join(ROOT, 'docs', 'benchmarks.md');

/** Writes docs/benchmarks.md, keeping the Notes section of the previous one. */
async function writeReport(results: BenchResults): Promise<void> {
  let existing: string | null = null;
  try {
    existing = readFileSync(DOC, 'utf8');
  } catch {
    existing = null;
  }
  await writeFormatted(DOC, renderReport(results, previousNotes(existing)), 'markdown');
}

/** `--report`: the doc again from the last full run (targets re-evaluated), nothing measured. */
async function regenerateReport(): Promise<number> {
  const stored = JSON.parse(readFileSync(LATEST, 'utf8')) as BenchResults;
  const results: BenchResults = { ...stored, targets: evaluateTargets(stored) };
  await writeFormatted(LATEST, JSON.stringify(results, null, 2), 'json');
  await writeReport(results);
  console.log(`report: ${DOC} (from ${LATEST})`);
  return 0;
}

async function main(): Promise<number> {
  const { smoke, only, reportOnly } = parseArgs(process.argv.slice(2));
  if (reportOnly) return regenerateReport();
  const settings = smoke ? SMOKE : FULL;
  const selected = new Set<Scenario>(only ?? SCENARIOS);
  cleanUpOnSignals();
  const watchdog = setTimeout(() => {
    console.error(
      `bench: still running after ${WATCHDOG_MS[settings.mode] / 60_000} min; stopping`,
    );
    void cleanupAll().finally(() => process.exit(1));
  }, WATCHDOG_MS[settings.mode]);
  watchdog.unref();

  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const loadAtStart = loadAverage();
  const failures: string[] = [];
  const context: BenchContext = {
    settings,
    log: (message) => {
      console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}`);
    },
    fail: (message) => {
      failures.push(message);
      console.error(`FAILED ${message}`);
    },
  };
  context.log(
    `${settings.mode} bench, scenarios: ${[...selected].join(', ')}; load average ${loadAtStart.map((v) => v.toFixed(2)).join(' ')}`,
  );
  context.log('building the service (npm run build)');
  buildService();

  const runs: LoadRun[] = [];
  let expiry: ExpiryResult | null = null;
  let redisMemory: RedisMemoryResult | null = null;
  let redisMemoryDefaults: RedisMemoryResult | null = null;
  let httpFloor: HttpFloorRun[] | null = null;
  let roundTrips: RoundTripResult | null = null;
  let profile: NewPaymentProfile | null = null;
  const attempt = async (name: string, work: () => Promise<void>) => {
    if (interrupted()) return;
    try {
      await work();
    } catch (error) {
      if (interrupted()) return;
      context.fail(
        `${name} crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
      await cleanupAll();
    }
  };
  const report = (run: LoadRun) => {
    runs.push(run);
    const l = run.load.latencyMs;
    context.log(
      `${run.id}: ${run.okPerSecond.toFixed(0)}/s ok, p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, ` +
        `p99.9 ${l.p999.toFixed(2)} ms, errors ${run.errors}, violations ${run.invariants.violations}`,
    );
  };

  try {
    if (selected.has('round-trips')) {
      await attempt('round-trips', async () => {
        roundTrips = await runRoundTrips(context);
        for (const op of roundTrips.operations) {
          context.log(
            `round trips: ${op.operation}: ${op.commands.toFixed(1)} commands, ${op.socketReads.toFixed(1)} socket reads, the answer waits for ${op.waitedRoundTrips?.toFixed(1) ?? '?'}`,
          );
        }
      });
    }
    if (selected.has('new-payments')) {
      for (const appendfsync of ['everysec', 'always'] as const) {
        for (const processes of [1, 2]) {
          await attempt(`new-payments/${appendfsync}/${processes}`, async () => {
            report(await runNewPayments(context, { appendfsync, processes, accounts: 1000 }));
          });
        }
      }
    }
    if (selected.has('replays')) {
      await attempt('replays', async () => {
        report(await runReplays(context));
      });
    }
    if (selected.has('cancel-refunds')) {
      await attempt('cancel-refunds', async () => {
        report(await runCancelRefunds(context));
      });
    }
    if (selected.has('contended')) {
      for (const processes of [1, 2]) {
        await attempt(`contended/${processes}`, async () => {
          report(await runContended(context, processes));
        });
      }
    }
    if (selected.has('one-account')) {
      await attempt('one-account', async () => {
        report(
          await runNewPayments(context, { appendfsync: 'everysec', processes: 1, accounts: 1 }),
        );
      });
    }
    if (selected.has('expiry')) {
      await attempt('expiry', async () => {
        const result = await runExpiry(context);
        expiry = result;
        context.log(
          `expiry: live ${result.live.expiriesPerSecond.toFixed(0)}/s (due ${result.live.duePerSecond.toFixed(0)}/s), ` +
            `lateness p50 ${result.live.latenessMs?.p50.toFixed(0) ?? '-'} ms p99 ${result.live.latenessMs?.p99.toFixed(0) ?? '-'} ms; ` +
            `backlog ${result.backlog.expiriesPerSecond.toFixed(0)}/s`,
        );
      });
    }
    if (selected.has('redis-memory')) {
      await attempt('redis-memory', async () => {
        const result = await runRedisMemory(context, 'paystate');
        redisMemory = result;
        context.log(`redis memory: ${result.bytesPerToken.toFixed(0)} bytes per token`);
        const defaults = await runRedisMemory(context, 'redis-defaults');
        redisMemoryDefaults = defaults;
        context.log(
          `redis memory with Redis's defaults: ${defaults.bytesPerToken.toFixed(0)} bytes per token`,
        );
      });
    }
    if (selected.has('http-floor')) {
      await attempt('http-floor', async () => {
        httpFloor = await runHttpFloor(context);
      });
    }
    if (selected.has('profile')) {
      await attempt('profile', async () => {
        const result = await runNewPaymentProfile(context);
        profile = result;
        const top = result.topFrames
          .slice(0, 5)
          .map((f) => `${f.functionName} ${f.selfPercent.toFixed(1)}%`);
        context.log(`profile: ${result.samples} samples; top: ${top.join(', ')}`);
      });
    }
  } finally {
    await cleanupAll();
  }
  // The signal handler exits once its cleanup is done; write nothing partial.
  if (interrupted()) return 130;

  const partial = {
    mode: settings.mode,
    scenarios: [...selected],
    startedAt,
    environment: describeEnvironment(),
    loadAverage: { start: loadAtStart, end: loadAverage() },
    settings,
    runs,
    expiry,
    redisMemory,
    redisMemoryDefaults,
    httpFloor,
    roundTrips,
    profile,
    failures,
  };
  const results: BenchResults = {
    ...partial,
    finishedAt: new Date().toISOString(),
    targets: evaluateTargets(partial),
  };

  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const name = smoke ? 'smoke' : only === null ? 'latest' : 'partial';
  const jsonPath = name === 'latest' ? LATEST : join(resultsDir, `${name}.json`);
  await writeFormatted(jsonPath, JSON.stringify(results, null, 2), 'json');
  context.log(`results: ${jsonPath}`);
  if (!smoke && only === null) {
    await writeReport(results);
    context.log(`report: ${DOC}`);
  }
  for (const target of results.targets) {
    const verdict =
      target.met === null ? 'not run' : target.met ? 'met' : `MISSED (${target.gap ?? ''})`;
    context.log(`target: ${target.target}: ${target.measured} → ${verdict}`);
  }
  if (failures.length > 0) {
    console.error(`\n${failures.length} failure(s):\n- ${failures.join('\n- ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    await cleanupAll();
    process.exit(1);
  },
);
