/** What the numbers were measured on and with: machine, versions, the command. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { PRODUCTION_SCRIPT, productionCommand, ROOT } from './service-process.ts';

export interface Environment {
  readonly machine: {
    readonly cores: number;
    readonly cpuModel: string;
    readonly memoryBytes: number;
    readonly kernel: string;
    /** Where the redis-servers keep their AOF (the fsync policy's cost depends on it). */
    readonly aofFilesystem: string;
  };
  readonly versions: {
    readonly node: string;
    readonly redis: string;
    readonly packages: Readonly<Record<string, string>>;
  };
  readonly git: { readonly commit: string | null; readonly dirty: boolean | null };
  /** As typed (npm script), and the process actually run. */
  readonly command: string;
  readonly processCommand: string;
  /** How the service under load was built and started (absent in results from before it was recorded). */
  readonly service?: { readonly build: string; readonly command: string };
}

const PACKAGES = [
  'express',
  'ioredis',
  'bullmq',
  '@sesamecare-oss/redlock',
  'xstate',
  'zod',
  'tsx',
  'typescript',
  'autocannon',
];

function run(command: string, args: readonly string[]): string | null {
  try {
    return execFileSync(command, args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

function cpuModel(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1];
    if (model !== undefined) return model.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

/** Filesystem type of the mount holding `path` (from /proc/mounts). */
function filesystemOf(path: string): string {
  try {
    let best = { mount: '', type: 'unknown', device: '' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [device = '', mount = '', type = ''] = line.split(' ');
      const inside = path === mount || path.startsWith(mount.endsWith('/') ? mount : `${mount}/`);
      if (inside && mount.length > best.mount.length) best = { mount, type, device };
    }
    return `${best.type} (${best.device} on ${best.mount})`;
  } catch {
    return 'unknown';
  }
}

function packageVersion(name: string): string {
  try {
    const manifest = JSON.parse(
      readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'),
    ) as { version?: string };
    return manifest.version ?? 'unknown';
  } catch {
    return 'missing';
  }
}

export function describeEnvironment(): Environment {
  const script = process.env.npm_lifecycle_event;
  const args = process.argv.slice(2);
  const processCommand = [
    'node',
    ...process.execArgv,
    relative(ROOT, process.argv[1] ?? ''),
    ...args,
  ].join(' ');
  const scriptLine = process.env.npm_lifecycle_script ?? '';
  const extra = args.filter((arg) => !scriptLine.split(' ').includes(arg));
  const command =
    script === undefined
      ? processCommand
      : `npm run ${script}${extra.length > 0 ? ` -- ${extra.join(' ')}` : ''}`;
  const status = run('git', ['status', '--porcelain']);
  const service = productionCommand();
  return {
    machine: {
      cores: availableParallelism(),
      cpuModel: cpuModel(),
      memoryBytes: totalmem(),
      kernel: release(),
      aofFilesystem: filesystemOf(tmpdir()),
    },
    versions: {
      node: process.version,
      redis: /v=(\S+)/.exec(run('redis-server', ['--version']) ?? '')?.[1] ?? 'unknown',
      packages: Object.fromEntries(PACKAGES.map((name) => [name, packageVersion(name)])),
    },
    git: {
      commit: run('git', ['rev-parse', '--short', 'HEAD']),
      dirty: status === null ? null : status !== '',
    },
    command,
    processCommand,
    service: {
      build: 'npm run build',
      command: `npm run ${PRODUCTION_SCRIPT}: ${['node', ...service.nodeFlags, service.entry].join(' ')}`,
    },
  };
}

export function loadAverage(): [number, number, number] {
  const [one = 0, five = 0, fifteen = 0] = loadavg();
  return [one, five, fifteen];
}
