import { describe, expect, it } from 'vitest';
import {
  EmulatorOptionsError,
  emulatorOptionsFrom,
} from '../../src/processor/emulator/emulator-options.ts';
import { spawnScript } from '../support/processes.ts';
import { EMULATOR_SCRIPT } from '../support/processor-emulator.ts';

function refusal(argv: string[], env: Record<string, string> = {}): string {
  try {
    emulatorOptionsFrom(argv, env);
  } catch (error) {
    expect(error).toBeInstanceOf(EmulatorOptionsError);
    return (error as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify({ argv, env })}`);
}

describe('the emulator options', () => {
  it('default everything but the secret', () => {
    expect(emulatorOptionsFrom([], { PAYSTATE_PROCESSOR_SECRET: 's' })).toEqual({
      host: '127.0.0.1',
      port: 4010,
      secret: 's',
      webhookUrl: null,
      webhookDelayMs: 100,
      settleMs: 1_000,
      timeoutHoldMs: 120_000,
    });
  });

  it('take flags over their environment variables', () => {
    const options = emulatorOptionsFrom(
      [
        '--port',
        '4011',
        '--secret',
        'flag',
        '--webhook-url',
        'http://127.0.0.1:8080/processor/webhooks',
      ],
      {
        PROCESSOR_EMULATOR_PORT: '4012',
        PAYSTATE_PROCESSOR_SECRET: 'env',
        PROCESSOR_EMULATOR_SETTLE_MS: '50',
      },
    );
    expect(options).toMatchObject({
      port: 4011,
      secret: 'flag',
      webhookUrl: 'http://127.0.0.1:8080/processor/webhooks',
      settleMs: 50,
    });
  });

  it('refuse a bad value naming where it came from', () => {
    expect(refusal(['--secret', 's', '--port', 'http'])).toContain('--port');
    expect(refusal(['--secret', 's'], { PROCESSOR_EMULATOR_SETTLE_MS: '-1' })).toContain(
      'PROCESSOR_EMULATOR_SETTLE_MS',
    );
    expect(refusal(['--secret', 's', '--webhook-url', 'ftp://x'])).toContain('--webhook-url');
    expect(refusal([])).toContain('PAYSTATE_PROCESSOR_SECRET');
    expect(refusal(['--secret', 's', '--prot', '1'])).toContain('--prot');
  });

  it('make the process exit 2 with the reason and the usage', async () => {
    const child = spawnScript(EMULATOR_SCRIPT, ['--port', 'none', '--secret', 's'], {});
    expect((await child.exited()).code).toBe(2);
    expect(child.stderr()).toContain('--port must be an integer');
    expect(child.stderr()).toContain('usage: npm run processor:emulator');
  });
});
