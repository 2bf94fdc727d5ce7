/**
 * `npm run bench:overhead -- <what>`: what observing the service costs in
 * throughput, new payments (POST /payments, a fresh Idempotency-Key each),
 * one api+worker process, measured with and without in alternating runs in
 * one sitting, so a machine whose load drifts weighs on both sides alike.
 *
 * - `logs-metrics`: LOG_LEVEL=info and metrics on (the defaults) against
 *   LOG_LEVEL=silent and PAYSTATE_METRICS=off;
 * - `tracing`: OTEL_EXPORTER_OTLP_ENDPOINT set (spans sent to a receiver in
 *   this process that reads and drops them) against unset; logs and metrics
 *   on in both.
 *
 * Options: `--rounds n` (pairs of runs, default 4), `--seconds s` (measured
 * seconds per run, default 10; 3 s of warm-up before each), `--discard-logs`
 * (the service's stdout to /dev/null instead of a pipe this process reads:
 * the log's cost to the service alone, not to whoever reads it).
 * Prints each run, each pair's ratios (on / off) and their medians: of
 * throughput, and of payments per CPU second of the service process (what
 * the same CPU serves: far less sensitive to other load on a shared host).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cleanUpOnSignals } from './cleanup.ts';
import { measureRun, median, type Measured } from './paired-runs.ts';
import { buildService } from './service-process.ts';

type What = 'logs-metrics' | 'tracing';

function parseArgs(argv: readonly string[]): {
  what: What;
  rounds: number;
  seconds: number;
  discardLogs: boolean;
} {
  let what: What | null = null;
  let discardLogs = false;
  let rounds = 4;
  let seconds = 10;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--rounds') rounds = Number(argv[++i]);
    else if (arg === '--seconds') seconds = Number(argv[++i]);
    else if (arg === '--discard-logs') discardLogs = true;
    else if (arg === 'logs-metrics' || arg === 'tracing') what = arg;
    else
      throw new Error(
        `unknown argument "${arg}"; use logs-metrics|tracing [--rounds n] [--seconds s]`,
      );
  }
  if (what === null) throw new Error('say what to measure: logs-metrics or tracing');
  if (!(rounds >= 1 && seconds > 0)) throw new Error('--rounds and --seconds must be positive');
  return { what, rounds, seconds, discardLogs };
}

/** An OTLP/HTTP receiver that reads every export and drops it. */
async function discardingReceiver(): Promise<{ url: string; bytes: () => number; close(): void }> {
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    bytes: () => bytes,
    close: () => server.close(),
  };
}

async function main(): Promise<void> {
  const { what, rounds, seconds, discardLogs } = parseArgs(process.argv.slice(2));
  cleanUpOnSignals();
  buildService();
  const receiver = what === 'tracing' ? await discardingReceiver() : null;
  const variants: Record<'on' | 'off', Record<string, string>> = what === 'logs-metrics'
    ? {
        on: { LOG_LEVEL: 'info', PAYSTATE_METRICS: 'on' },
        off: { LOG_LEVEL: 'silent', PAYSTATE_METRICS: 'off' },
      }
    : {
        on: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver?.url ?? '' },
        off: { OTEL_EXPORTER_OTLP_ENDPOINT: '' },
      };
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      // Alternate which goes first, so neither always runs on a warmer machine.
      const order: ('on' | 'off')[] = round % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      const rate: Partial<Record<'on' | 'off', Measured>> = {};
      for (const variant of order) {
        const measured = await measureRun({
          workload: 'new-payments',
          env: variants[variant],
          seconds,
          discardLogs,
        });
        rate[variant] = measured;
        console.log(
          `round ${round} ${what} ${variant}: ${measured.perSecond.toFixed(0)} payments/s, ` +
            `${measured.cpuMsPerAnswer.toFixed(3)} CPU ms per payment`,
        );
      }
      const ratio = (rate.on?.perSecond ?? NaN) / (rate.off?.perSecond ?? NaN);
      // Payments per CPU second, on / off: what the same CPU serves (less sensitive to other load).
      const cpuRatio = (rate.off?.cpuMsPerAnswer ?? NaN) / (rate.on?.cpuMsPerAnswer ?? NaN);
      ratios.push(ratio);
      cpuRatios.push(cpuRatio);
      console.log(
        `round ${round} on/off: throughput ${ratio.toFixed(3)}, payments per CPU second ${cpuRatio.toFixed(3)}`,
      );
    }
  } finally {
    receiver?.close();
  }
  console.log(
    `${what}: throughput ratios ${ratios.map((r) => r.toFixed(3)).join(', ')}; median ${median(ratios).toFixed(3)}; ` +
      `payments per CPU second ratios ${cpuRatios.map((r) => r.toFixed(3)).join(', ')}; median ${median(cpuRatios).toFixed(3)}` +
      (receiver === null ? '' : `; ${receiver.bytes()} bytes of spans received`),
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
