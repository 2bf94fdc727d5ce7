/**
 * `npm run processor:emulator -- --port 4010 --secret … --webhook-url …`:
 * the processor emulator as a process (docs/processor.md). It prints
 * `processor emulator listening on <url>` once it accepts connections and
 * stops on SIGINT or SIGTERM.
 */
import { EMULATOR_USAGE, EmulatorOptionsError, emulatorOptionsFrom } from './emulator-options.ts';
import { startEmulator } from './emulator-server.ts';

async function main(): Promise<void> {
  let options;
  try {
    options = emulatorOptionsFrom(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof EmulatorOptionsError)) throw error;
    process.stderr.write(`processor emulator: ${error.message}\n${EMULATOR_USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const emulator = await startEmulator(options);
  process.stdout.write(`processor emulator listening on ${emulator.url}\n`);
  const stop = () => {
    // Explicit: pooled webhook connections must not keep a stopped emulator alive.
    void emulator.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

await main();
