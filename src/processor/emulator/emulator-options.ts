/**
 * The emulator's options from its command line and environment (a flag
 * wins over its variable). A bad value is refused naming the flag or the
 * variable it came from.
 */
import { parseArgs } from 'node:util';
import { EMULATOR_DEFAULTS, type EmulatorOptions } from './emulator-server.ts';

export class EmulatorOptionsError extends Error {}

interface Setting {
  readonly flag: string;
  readonly env: string;
}

const SETTINGS = {
  port: { flag: 'port', env: 'PROCESSOR_EMULATOR_PORT' },
  host: { flag: 'host', env: 'PROCESSOR_EMULATOR_HOST' },
  secret: { flag: 'secret', env: 'PAYSTATE_PROCESSOR_SECRET' },
  webhookUrl: { flag: 'webhook-url', env: 'PROCESSOR_EMULATOR_WEBHOOK_URL' },
  webhookDelayMs: { flag: 'webhook-delay-ms', env: 'PROCESSOR_EMULATOR_WEBHOOK_DELAY_MS' },
  settleMs: { flag: 'settle-ms', env: 'PROCESSOR_EMULATOR_SETTLE_MS' },
  timeoutHoldMs: { flag: 'timeout-hold-ms', env: 'PROCESSOR_EMULATOR_TIMEOUT_HOLD_MS' },
} as const satisfies Record<keyof EmulatorOptions, Setting>;

export const EMULATOR_USAGE = `usage: npm run processor:emulator -- [flags]
  --port <n>              ${SETTINGS.port.env} (default ${EMULATOR_DEFAULTS.port}; 0 = any free port)
  --host <address>        ${SETTINGS.host.env} (default ${EMULATOR_DEFAULTS.host})
  --secret <s>            ${SETTINGS.secret.env} (required): bearer token and webhook signing secret
  --webhook-url <url>     ${SETTINGS.webhookUrl.env} (default: none, webhooks only recorded)
  --webhook-delay-ms <n>  ${SETTINGS.webhookDelayMs.env} (default ${EMULATOR_DEFAULTS.webhookDelayMs})
  --settle-ms <n>         ${SETTINGS.settleMs.env} (default ${EMULATOR_DEFAULTS.settleMs})
  --timeout-hold-ms <n>   ${SETTINGS.timeoutHoldMs.env} (default ${EMULATOR_DEFAULTS.timeoutHoldMs})`;

function read(
  setting: Setting,
  flags: Record<string, string | boolean | undefined>,
  env: Record<string, string | undefined>,
): { value: string; from: string } | null {
  const flag = flags[setting.flag];
  if (typeof flag === 'string') return { value: flag, from: `--${setting.flag}` };
  const variable = env[setting.env];
  if (variable !== undefined && variable !== '') return { value: variable, from: setting.env };
  return null;
}

function integer(found: { value: string; from: string } | null, fallback: number, max: number) {
  if (found === null) return fallback;
  const value = Number(found.value);
  if (!/^[0-9]+$/.test(found.value) || value > max) {
    throw new EmulatorOptionsError(
      `${found.from} must be an integer from 0 to ${max}, got "${found.value}"`,
    );
  }
  return value;
}

export function emulatorOptionsFrom(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): EmulatorOptions {
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        Object.values(SETTINGS).map(({ flag }) => [flag, { type: 'string' as const }]),
      ),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new EmulatorOptionsError(error instanceof Error ? error.message : String(error));
  }
  const secret = read(SETTINGS.secret, flags, env);
  if (secret === null) {
    throw new EmulatorOptionsError(`--secret or ${SETTINGS.secret.env} is required`);
  }
  const webhook = read(SETTINGS.webhookUrl, flags, env);
  if (webhook !== null) {
    let url: URL | null = null;
    try {
      url = new URL(webhook.value);
    } catch {
      url = null;
    }
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new EmulatorOptionsError(
        `${webhook.from} must be an http(s) URL, got "${webhook.value}"`,
      );
    }
  }
  return {
    host: read(SETTINGS.host, flags, env)?.value ?? EMULATOR_DEFAULTS.host,
    port: integer(read(SETTINGS.port, flags, env), EMULATOR_DEFAULTS.port, 65_535),
    secret: secret.value,
    webhookUrl: webhook?.value ?? null,
    webhookDelayMs: integer(
      read(SETTINGS.webhookDelayMs, flags, env),
      EMULATOR_DEFAULTS.webhookDelayMs,
      600_000,
    ),
    settleMs: integer(read(SETTINGS.settleMs, flags, env), EMULATOR_DEFAULTS.settleMs, 600_000),
    timeoutHoldMs: integer(
      read(SETTINGS.timeoutHoldMs, flags, env),
      EMULATOR_DEFAULTS.timeoutHoldMs,
      600_000,
    ),
  };
}
