/**
 * `npm run bench:compare -- <git-ref>`: this checkout against an earlier
 * commit, in one sitting. The ref is checked out beside this one (a detached
 * git worktree in a temporary directory, using this checkout's node_modules),
 * both are built, then each workload runs on the two builds in alternating
 * order, round after round, each run on a fresh deployment (its own Redis,
 * one api+worker process). Prints every run, each pair's ratio (this / ref) of
 * throughput and of answers per CPU second of the service process (far less
 * sensitive to other load on a shared host), and their medians.
 *
 * Options: `--workload new-payments|cancel-refunds` (repeatable; default
 * both), `--rounds n` (default 4), `--seconds s` (default 10), `--env K=V`
 * (repeatable: a setting for this checkout's service only, e.g.
 * `--env LOG_LEVEL=silent --env PAYSTATE_METRICS=off` to leave out what an
 * older release did not have).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupAll, cleanUpOnSignals, onCleanup } from './cleanup.ts';
import { measureRun, median, WORKLOADS, type Measured, type Workload } from './paired-runs.ts';
import { buildService, ROOT } from './service-process.ts';

interface Args {
  readonly ref: string;
  readonly workloads: readonly Workload[];
  readonly rounds: number;
  readonly seconds: number;
  readonly env: Readonly<Record<string, string>>;
}

function parseArgs(argv: readonly string[]): Args {
  let ref: string | null = null;
  const workloads: Workload[] = [];
  const env: Record<string, string> = {};
  let rounds = 4;
  let seconds = 10;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--rounds') rounds = Number(argv[++i]);
    else if (arg === '--seconds') seconds = Number(argv[++i]);
    else if (arg === '--workload') {
      const workload = argv[++i] as Workload;
      if (!WORKLOADS.includes(workload)) {
        throw new Error(`--workload takes ${WORKLOADS.join(' or ')}`);
      }
      workloads.push(workload);
    } else if (arg === '--env') {
      const [name, ...value] = (argv[++i] ?? '').split('=');
      if (name === undefined || name === '' || value.length === 0) {
        throw new Error('--env takes NAME=value');
      }
      env[name] = value.join('=');
    } else if (!arg.startsWith('--') && ref === null) ref = arg;
    else {
      throw new Error(
        `unknown argument "${arg}"; use <git-ref> [--workload w] [--rounds n] [--seconds s] [--env K=V]`,
      );
    }
  }
  if (ref === null) throw new Error('name the commit to compare with, e.g. HEAD~1');
  if (!(rounds >= 1 && seconds > 0)) throw new Error('--rounds and --seconds must be positive');
  return { ref, workloads: workloads.length > 0 ? workloads : WORKLOADS, rounds, seconds, env };
}

const git = (...args: string[]) =>
  execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The ref checked out beside this checkout, built; removed on exit. */
function checkOut(ref: string): { root: string; commit: string } {
  const commit = git('rev-parse', '--short', `${ref}^{commit}`).trim();
  const parent = mkdtempSync(join(tmpdir(), 'paystate-compare-'));
  const root = join(parent, commit);
  onCleanup(() => {
    rmSync(parent, { recursive: true, force: true });
    git('worktree', 'prune');
  });
  git('worktree', 'add', '--detach', root, commit);
  // The ref's build and run use this checkout's packages: a ref that needs
  // packages this one lacks fails to build, and says so.
  if (!existsSync(join(root, 'node_modules'))) {
    symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  }
  buildService(root);
  return { root, commit };
}

function describe(measured: Measured): string {
  return `${measured.perSecond.toFixed(0)}/s, ${measured.cpuMsPerAnswer.toFixed(3)} CPU ms per answer`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  cleanUpOnSignals();
  const head = git('rev-parse', '--short', 'HEAD').trim();
  const dirty = git('status', '--porcelain', '--untracked-files=no').trim() !== '';
  const before = checkOut(args.ref);
  buildService();
  const label = { ref: before.commit, head: `${head}${dirty ? '+changes' : ''}` };
  console.log(
    `comparing ${label.head} (this checkout${Object.keys(args.env).length > 0 ? `, ${JSON.stringify(args.env)}` : ''}) with ${label.ref}`,
  );
  const summary: string[] = [];
  for (const workload of args.workloads) {
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    for (let round = 1; round <= args.rounds; round++) {
      // Alternate which goes first, so neither always runs on a warmer machine.
      const order: ('ref' | 'head')[] = round % 2 === 1 ? ['ref', 'head'] : ['head', 'ref'];
      const rate: Partial<Record<'ref' | 'head', Measured>> = {};
      for (const side of order) {
        rate[side] = await measureRun({
          workload,
          seconds: args.seconds,
          env: side === 'head' ? args.env : {},
          ...(side === 'ref' ? { root: before.root } : {}),
        });
        console.log(`${workload} round ${round} ${label[side]}: ${describe(rate[side])}`);
      }
      const ratio = (rate.head?.perSecond ?? NaN) / (rate.ref?.perSecond ?? NaN);
      const cpuRatio = (rate.ref?.cpuMsPerAnswer ?? NaN) / (rate.head?.cpuMsPerAnswer ?? NaN);
      ratios.push(ratio);
      cpuRatios.push(cpuRatio);
      console.log(
        `${workload} round ${round} ${label.head}/${label.ref}: throughput ${ratio.toFixed(3)}, answers per CPU second ${cpuRatio.toFixed(3)}`,
      );
    }
    summary.push(
      `${workload}: throughput ratios ${ratios.map((r) => r.toFixed(3)).join(', ')}; median ${median(ratios).toFixed(3)}; ` +
        `answers per CPU second ratios ${cpuRatios.map((r) => r.toFixed(3)).join(', ')}; median ${median(cpuRatios).toFixed(3)}`,
    );
  }
  console.log(`${label.head} against ${label.ref}, ${args.rounds} rounds of ${args.seconds} s:`);
  for (const line of summary) console.log(line);
}

main().then(
  async () => {
    await cleanupAll();
    process.exit(0);
  },
  async (error: unknown) => {
    console.error(error);
    await cleanupAll();
    process.exit(1);
  },
);
