/** Real processes of the service and its CLI, as an operator runs them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServiceProcess {
  readonly child: ChildProcess;
  output(): string;
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
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  return {
    child,
    output: () => output,
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

/** Runs the CLI to completion. */
export async function runCli(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const cli = spawnScript('src/cli/paystate.ts', args, env);
  const { code } = await cli.exited();
  return { code, output: cli.output() };
}
