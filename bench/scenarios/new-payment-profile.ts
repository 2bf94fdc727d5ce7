/**
 * Where the new-payment path spends its CPU: one API process under
 * `node --cpu-prof` takes the new-payment load; only the samples taken while
 * the measured load ran are ranked. Profiling slows the process down, so
 * this run's throughput is not reported as a result.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { finish, type BenchContext } from '../bench-context.ts';
import { onCleanup } from '../cleanup.ts';
import { summarizeProfile, type ProfileSummary } from '../cpu-profile.ts';
import { startDeployment } from '../deployment.ts';
import { runLoad } from '../http-load.ts';
import { accountIds, payment, tokenPrefix } from '../requests.ts';
import { ROOT } from '../service-process.ts';

export interface NewPaymentProfile extends ProfileSummary {
  readonly nodeArgs: readonly string[];
  /** The raw profile (for Chrome DevTools or speedscope), kept except in smoke runs. */
  readonly file: string | null;
  /** Throughput while profiled (slower than unprofiled). */
  readonly responsesPerSecond: number;
}

function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export async function runNewPaymentProfile(context: BenchContext): Promise<NewPaymentProfile> {
  const { settings } = context;
  const id = 'new-payment-profile';
  context.log(`${id}: starting`);
  const dir = mkdtempSync(join(tmpdir(), 'paystate-profile-'));
  const unregister = onCleanup(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    const nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
    const deployment = await startDeployment({
      appendfsync: 'everysec',
      apiProcesses: 1,
      nodeArgs,
    });
    let window = { fromUs: 0, toUs: 0 };
    let responsesPerSecond = 0;
    try {
      const accounts = accountIds('account', 1000);
      const prefix = tokenPrefix('profile');
      let sent = 0;
      const next = () => {
        const i = sent++;
        return payment(`${prefix}-${i}`, accounts[i % accounts.length] ?? 'account');
      };
      await runLoad({
        urls: deployment.urls,
        connections: settings.connections,
        durationS: settings.warmupS,
        next,
      });
      const fromUs = nowUs();
      const load = await runLoad({
        urls: deployment.urls,
        connections: settings.connections,
        durationS: settings.profileS,
        next,
      });
      window = { fromUs, toUs: nowUs() };
      responsesPerSecond = load.responsesPerSecond;
    } finally {
      // The profile is written when the process exits.
      await finish(context, id, deployment);
    }
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error(`${id}: the API process wrote no .cpuprofile`);
    let kept: string | null = null;
    if (settings.mode !== 'smoke') {
      kept = join(ROOT, 'bench', 'results', 'new-payment.cpuprofile');
      mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
      copyFileSync(join(dir, file), kept);
    }
    return {
      ...summarizeProfile(join(dir, file), ROOT, window),
      nodeArgs: ['--cpu-prof'],
      file: kept === null ? null : relative(ROOT, kept),
      responsesPerSecond,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
}
