/**
 * A process whose own clock is off by a fixed offset, for the clock-skew
 * tests: libfaketime (Debian's `faketime` package) preloaded into the
 * process itself. The `faketime` command is not used: it forks the program
 * and waits for it, so a signal meant for the program (SIGTERM, SIGKILL,
 * SIGSTOP) stops only `faketime`, and the program is left running with its
 * skewed clock after the test.
 */
import { execFileSync } from 'node:child_process';

/** `$LIB` is the loader's own: lib/x86_64-linux-gnu on Debian, as `faketime` writes it. */
const LIBFAKETIME = '/usr/$LIB/faketime/libfaketime.so.1';

/**
 * A wrapper for `spawnScript` or `AppProcesses.start` (`env` replaces
 * itself with the program: the pid is the program's). `offset` is
 * libfaketime's relative form, e.g. `+10m`, `-10m`. Throws when the library
 * does not take (the loader only warns and runs the program on the true
 * clock, which would make a skew test pass for nothing).
 */
export function skewedClock(offset: string): readonly string[] {
  const wrapper = ['env', `LD_PRELOAD=${LIBFAKETIME}`, `FAKETIME=${offset}`];
  const [command = 'env', ...args] = wrapper;
  const seen = Number(execFileSync(command, [...args, 'date', '+%s'], { encoding: 'utf8' }));
  const expected = Date.now() / 1000 + offsetSeconds(offset);
  if (!(Math.abs(seen - expected) < 30)) {
    throw new Error(
      `libfaketime did not set the clock ${offset}: is the faketime package installed?`,
    );
  }
  return wrapper;
}

function offsetSeconds(offset: string): number {
  const match = /^([+-])(\d+)([smhd]?)$/.exec(offset);
  if (match === null) throw new Error(`unsupported offset ${offset}`);
  const unit = { '': 1, s: 1, m: 60, h: 3_600, d: 86_400 }[match[3] ?? ''] ?? 1;
  return (match[1] === '-' ? -1 : 1) * Number(match[2]) * unit;
}
