/** Real processes of the service and its CLI, as an operator runs them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServiceProcess {
  readonly child: ChildProcess;
  /** stdout and stderr, interleaved as they came. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves when the output contains `text`. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `node --import tsx <script>` with the given environment (added to this
 * process's), run through `wrapper` if given (e.g. `faketime -f +10m`).
 */
export function spawnScript(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  wrapper: readonly string[] = [],
): ServiceProcess {
  const command = [...wrapper, process.execPath, '--import', 'tsx', script, ...args];
  const child = spawn(command[0] ?? process.execPath, command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stderr += chunk.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  return {
    child,
    output: () => output,
    stdout: () => stdout,
    stderr: () => stderr,
    exited: () => exit,
    async waitForOutput(text, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!output.includes(text)) {
        if (child.exitCode !== null) {
          throw new Error(
            `process exited (${child.exitCode}) before printing "${text}":\n${output}`,
          );
        }
        if (Date.now() > deadline) throw new Error(`no "${text}" in output:\n${output}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

export interface CliRun {
  readonly code: number | null;
  /** Set when the CLI did not exit by itself and was killed. */
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the CLI to completion, as `bin/paystate.js` does; one that has not
 * exited after `killAfterMs` is killed (the result then shows the signal).
 */
export async function runCli(
  args: readonly string[],
  env: Record<string, string>,
  { killAfterMs = 20_000 } = {},
): Promise<CliRun> {
  const cli = spawnScript('bin/paystate.js', args, env);
  const kill = setTimeout(() => cli.child.kill('SIGKILL'), killAfterMs);
  const { code, signal } = await cli.exited();
  clearTimeout(kill);
  return { code, signal, output: cli.output(), stdout: cli.stdout(), stderr: cli.stderr() };
}
