import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { faultSetting } from '../support/service-entry.ts';

/** Runs loadConfig and returns the ConfigError it throws. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('uses the documented defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      port: 8080,
      host: '127.0.0.1',
      redisUrl: 'redis://127.0.0.1:6379',
      redisClusterNodes: null,
      redisWaitReplicas: 0,
      redisWaitTimeoutMs: 1_000,
      timerQueues: 6,
      keyPrefix: 'paystate',
      paymentExpiryMs: 86_400_000,
      paymentCaptureWindowMs: 604_800_000,
      paymentRefundLimit: 100,
      expiredRetentionMs: 86_400_000,
      accountInitialBalanceCents: 100_000,
      defaultCurrency: 'USD',
      accountLedgerLimit: 1_000,
      accountOperationRetentionMs: 2 * 86_400_000 + 3_600_000,
      lockTtlMs: 10_000,
      lockWaitMs: 5_000,
      recoveryIntervalMs: 5_000,
      shutdownTimeoutMs: 10_000,
      httpHeadersTimeoutMs: 30_000,
      httpRequestTimeoutMs: 60_000,
      httpMaxConnections: 1_000,
      roles: ['api', 'worker'],
      logLevel: 'info',
      metricsPort: null,
      metrics: true,
      otlpEndpoint: null,
      managedRedis: 'auto',
      dataDir: '.data',
      expiryJobLockMs: 30_000,
      apiKeys: [],
      rateLimitPerSecond: 100,
      authFailuresPerMinute: 10,
      webhookAllowPrivate: false,
      webhookTimeoutMs: 10_000,
      webhookRetryBaseMs: 30_000,
      webhookRetryForMs: 259_200_000,
    });
  });

  it('reads LOG_LEVEL in any case and METRICS_PORT', () => {
    expect(loadConfig({ LOG_LEVEL: 'DEBUG', METRICS_PORT: '9464' })).toMatchObject({
      logLevel: 'debug',
      metricsPort: 9464,
    });
    expect(loadConfig({ LOG_LEVEL: 'silent', METRICS_PORT: '0' })).toMatchObject({
      logLevel: 'silent',
      metricsPort: 0,
    });
  });

  it('keeps metrics on and tracing off unless told', () => {
    expect(loadConfig({})).toMatchObject({ metrics: true, otlpEndpoint: null });
    expect(
      loadConfig({
        PAYSTATE_METRICS: 'OFF',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      }),
    ).toMatchObject({ metrics: false, otlpEndpoint: 'http://collector:4318' });
  });

  it('treats empty and blank numbers as unset', () => {
    const config = loadConfig({ PORT: '', PAYMENT_EXPIRY_MS: '  ' });

    expect(config.port).toBe(8080);
    expect(config.paymentExpiryMs).toBe(86_400_000);
  });

  it('keeps the default retention of operation ids above its floor when the sweep runs hourly or less', () => {
    const config = loadConfig({ RECOVERY_INTERVAL_MS: '3600000', LOCK_TTL_MS: '200' });
    expect(config.accountOperationRetentionMs).toBe(2 * 86_400_000 + 3_600_000 + 200);
  });

  it('takes every documented variable from the environment', () => {
    const config = loadConfig({
      PORT: '9090',
      HOST: '127.0.0.1',
      REDIS_URL: 'rediss://user:secret@redis.example:6380/2',
      REDIS_KEY_PREFIX: 'other-app',
      PAYMENT_EXPIRY_MS: '200',
      PAYMENT_CAPTURE_WINDOW_MS: '900',
      PAYMENT_REFUND_LIMIT: '7',
      EXPIRED_RETENTION_MS: '300',
      ACCOUNT_INITIAL_BALANCE_CENTS: '0',
      PAYSTATE_DEFAULT_CURRENCY: 'JPY',
      ACCOUNT_LEDGER_LIMIT: '50',
      ACCOUNT_OPERATION_RETENTION_MS: '5000',
      LOCK_TTL_MS: '2000',
      LOCK_WAIT_MS: '0',
      RECOVERY_INTERVAL_MS: '50',
      SHUTDOWN_TIMEOUT_MS: '1500',
      HTTP_HEADERS_TIMEOUT_MS: '5000',
      HTTP_REQUEST_TIMEOUT_MS: '5000',
      HTTP_MAX_CONNECTIONS: '50',
      PAYSTATE_ROLES: ' worker , api ,worker',
      LOG_LEVEL: 'warn',
      METRICS_PORT: '9100',
      PAYSTATE_METRICS: 'off',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4318',
      PAYSTATE_MANAGED_REDIS: 'never',
      PAYSTATE_DATA_DIR: '/var/lib/paystate',
      EXPIRY_JOB_LOCK_MS: '500',
      PAYSTATE_API_KEYS: `acme=${'ab'.repeat(32)}`,
      PAYSTATE_RATE_LIMIT_PER_SECOND: '0',
      PAYSTATE_AUTH_FAILURES_PER_MINUTE: '3',
      REDIS_WAIT_REPLICAS: '1',
      REDIS_WAIT_TIMEOUT_MS: '250',
      TIMER_QUEUES: '12',
      PAYSTATE_WEBHOOK_ALLOW_PRIVATE: '1',
      PAYSTATE_WEBHOOK_TIMEOUT_MS: '2500',
      PAYSTATE_WEBHOOK_RETRY_BASE_MS: '100',
      PAYSTATE_WEBHOOK_RETRY_FOR_MS: '60000',
    });

    expect(config).toEqual({
      port: 9090,
      host: '127.0.0.1',
      redisUrl: 'rediss://user:secret@redis.example:6380/2',
      redisClusterNodes: null,
      redisWaitReplicas: 1,
      redisWaitTimeoutMs: 250,
      timerQueues: 12,
      keyPrefix: 'other-app',
      paymentExpiryMs: 200,
      paymentCaptureWindowMs: 900,
      paymentRefundLimit: 7,
      expiredRetentionMs: 300,
      accountInitialBalanceCents: 0,
      defaultCurrency: 'JPY',
      accountLedgerLimit: 50,
      accountOperationRetentionMs: 5_000,
      lockTtlMs: 2_000,
      lockWaitMs: 0,
      recoveryIntervalMs: 50,
      shutdownTimeoutMs: 1_500,
      httpHeadersTimeoutMs: 5_000,
      httpRequestTimeoutMs: 5_000,
      httpMaxConnections: 50,
      roles: ['worker', 'api'],
      logLevel: 'warn',
      metricsPort: 9100,
      metrics: false,
      otlpEndpoint: 'https://collector.example:4318',
      managedRedis: 'never',
      dataDir: '/var/lib/paystate',
      expiryJobLockMs: 500,
      apiKeys: [{ tenant: 'acme', sha256: Buffer.from('ab'.repeat(32), 'hex') }],
      rateLimitPerSecond: 0,
      authFailuresPerMinute: 3,
      webhookAllowPrivate: true,
      webhookTimeoutMs: 2_500,
      webhookRetryBaseMs: 100,
      webhookRetryForMs: 60_000,
    });
  });

  it('reads REDIS_CLUSTER_NODES and then ignores REDIS_URL, even an invalid one', () => {
    const config = loadConfig({
      REDIS_CLUSTER_NODES: ' 10.0.0.1:7000,redis-b:7001 , [::1]:7002',
      REDIS_URL: 'not a url',
    });
    expect(config.redisClusterNodes).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-b', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
  });

  it('knows no test settings: fault points belong to the test entry point', () => {
    const config = loadConfig({ PAYSTATE_TEST_CRASH_AT: 'after-lunch' });
    expect(Object.keys(config).filter((key) => key.startsWith('test'))).toEqual([]);
  });

  it('the test entry point refuses a fault point that does not exist', () => {
    expect(() => faultSetting('PAYSTATE_TEST_CRASH_AT', 'after-lunch')).toThrow(
      /PAYSTATE_TEST_CRASH_AT must be one of after-lock/,
    );
    expect(() => faultSetting('PAYSTATE_TEST_PAUSE_AT', 'before-lunch:PAY')).toThrow(
      /PAYSTATE_TEST_PAUSE_AT must be one of after-lock.*got "before-lunch:PAY"/,
    );
  });

  it('the test entry point reads a fault point for one event', () => {
    expect(faultSetting('PAYSTATE_TEST_PAUSE_AT', 'after-ledger:PAY')).toEqual({
      point: 'after-ledger',
      event: 'PAY',
    });
    expect(faultSetting('PAYSTATE_TEST_CRASH_AT', 'after-persist-intent')).toEqual({
      point: 'after-persist-intent',
      event: null,
    });
  });

  it('accepts a single role', () => {
    expect(loadConfig({ PAYSTATE_ROLES: 'api' }).roles).toEqual(['api']);
    expect(loadConfig({ PAYSTATE_ROLES: 'worker' }).roles).toEqual(['worker']);
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ UNRELATED: 'x', PATH: '/usr/bin' }).port).toBe(8080);
  });

  it('returns a frozen config, roles included', () => {
    const config = loadConfig({});

    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.roles)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.roles as string[]).push('api');
    }).toThrow(TypeError);
    expect(config.port).toBe(8080);
  });

  describe('rejects invalid values with a ConfigError naming the variable', () => {
    it.each([
      ['PORT', 'abc', /PORT must be a whole number, got "abc"/],
      ['PORT', '-1', /PORT must be a whole number, got "-1"/],
      ['PORT', '80.5', /PORT must be a whole number/],
      ['PORT', '1e3', /PORT must be a whole number/],
      ['PORT', '65536', /PORT must be between 0 and 65535, got 65536/],
      ['PAYMENT_EXPIRY_MS', 'soon', /PAYMENT_EXPIRY_MS must be a whole number, got "soon"/],
      ['PAYMENT_EXPIRY_MS', '-5', /PAYMENT_EXPIRY_MS must be a whole number/],
      ['PAYMENT_EXPIRY_MS', '0', /PAYMENT_EXPIRY_MS must be between 1 and/],
      ['PAYMENT_CAPTURE_WINDOW_MS', '0', /PAYMENT_CAPTURE_WINDOW_MS must be between 1 and/],
      ['PAYMENT_CAPTURE_WINDOW_MS', '1.5', /PAYMENT_CAPTURE_WINDOW_MS must be a whole number/],
      ['PAYMENT_REFUND_LIMIT', '1001', /PAYMENT_REFUND_LIMIT must be between 1 and 1000/],
      ['EXPIRED_RETENTION_MS', '1d', /EXPIRED_RETENTION_MS must be a whole number/],
      ['EXPIRED_RETENTION_MS', '0', /EXPIRED_RETENTION_MS must be between 1 and/],
      [
        'ACCOUNT_INITIAL_BALANCE_CENTS',
        '-100',
        /ACCOUNT_INITIAL_BALANCE_CENTS must be a whole number, got "-100"/,
      ],
      ['ACCOUNT_INITIAL_BALANCE_CENTS', '10.00', /ACCOUNT_INITIAL_BALANCE_CENTS must be a whole/],
      [
        'ACCOUNT_INITIAL_BALANCE_CENTS',
        '9007199254740993',
        /ACCOUNT_INITIAL_BALANCE_CENTS must be between 0 and 9007199254740991/,
      ],
      ['ACCOUNT_LEDGER_LIMIT', '0', /ACCOUNT_LEDGER_LIMIT must be between 1 and 1000000/],
      ['PAYSTATE_DEFAULT_CURRENCY', 'usd', /PAYSTATE_DEFAULT_CURRENCY must be an ISO 4217 code/],
      ['PAYSTATE_DEFAULT_CURRENCY', 'ABC', /PAYSTATE_DEFAULT_CURRENCY ABC is not an ISO 4217/],
      ['PAYSTATE_DEFAULT_CURRENCY', 'XAU', /PAYSTATE_DEFAULT_CURRENCY XAU is not an ISO 4217/],
      ['ACCOUNT_LEDGER_LIMIT', 'all', /ACCOUNT_LEDGER_LIMIT must be a whole number/],
      [
        'ACCOUNT_OPERATION_RETENTION_MS',
        '60000',
        /ACCOUNT_OPERATION_RETENTION_MS must be at least PAYMENT_EXPIRY_MS \+ EXPIRED_RETENTION_MS \+ LOCK_TTL_MS \+ RECOVERY_INTERVAL_MS \(172815000\), got 60000/,
      ],
      ['LOCK_TTL_MS', '50', /LOCK_TTL_MS must be between 100 and/],
      ['LOCK_WAIT_MS', 'forever', /LOCK_WAIT_MS must be a whole number/],
      ['RECOVERY_INTERVAL_MS', '5', /RECOVERY_INTERVAL_MS must be between 10 and/],
      ['SHUTDOWN_TIMEOUT_MS', 'x', /SHUTDOWN_TIMEOUT_MS must be a whole number/],
      ['HTTP_HEADERS_TIMEOUT_MS', '0', /HTTP_HEADERS_TIMEOUT_MS must be between 1 and/],
      ['HTTP_HEADERS_TIMEOUT_MS', '90000', /HTTP_HEADERS_TIMEOUT_MS \(90000\) must not exceed/],
      ['HTTP_REQUEST_TIMEOUT_MS', '1m', /HTTP_REQUEST_TIMEOUT_MS must be a whole number/],
      ['HTTP_REQUEST_TIMEOUT_MS', '1000', /must not exceed HTTP_REQUEST_TIMEOUT_MS \(1000\)/],
      ['HTTP_MAX_CONNECTIONS', '0', /HTTP_MAX_CONNECTIONS must be between 1 and/],
      ['REDIS_URL', 'http://127.0.0.1:6379', /REDIS_URL must start with redis:\/\/ or rediss:\/\//],
      ['REDIS_URL', '127.0.0.1:6379', /REDIS_URL must start with redis:\/\//],
      ['REDIS_URL', '', /REDIS_URL must start with redis:\/\//],
      ['REDIS_URL', 'redis://127.0.0.1:99999', /REDIS_URL must have a port between 1 and 65535/],
      ['REDIS_URL', 'redis://127.0.0.1:0', /REDIS_URL must have a port between 1 and 65535/],
      ['REDIS_URL', 'redis://127.0.0.1:port', /REDIS_URL must have a port between 1 and 65535/],
      ['REDIS_URL', 'redis://exa mple:6379', /REDIS_URL is not a valid URL/],
      ['REDIS_URL', 'redis://:6379', /REDIS_URL must name a host/],
      ['REDIS_URL', 'redis:///0', /REDIS_URL must name a host/],
      ['REDIS_KEY_PREFIX', 'has space', /REDIS_KEY_PREFIX must be 1-64 characters/],
      ['REDIS_KEY_PREFIX', 'has:colon', /REDIS_KEY_PREFIX must be 1-64 characters/],
      ['PAYSTATE_ROLES', 'web', /PAYSTATE_ROLES must list api and\/or worker, got "web"/],
      ['PAYSTATE_ROLES', 'api,web', /PAYSTATE_ROLES must list api and\/or worker, got "api,web"/],
      ['PAYSTATE_ROLES', ' , ', /PAYSTATE_ROLES must list api and\/or worker/],
      ['PAYSTATE_MANAGED_REDIS', 'always', /PAYSTATE_MANAGED_REDIS/],
      ['LOG_LEVEL', 'verbose', /LOG_LEVEL must be one of fatal, error, .*silent, got "verbose"/],
      ['METRICS_PORT', '65536', /METRICS_PORT must be a port between 0 and 65535, got "65536"/],
      ['METRICS_PORT', 'nine', /METRICS_PORT must be a port between 0 and 65535/],
      ['PAYSTATE_METRICS', 'false', /PAYSTATE_METRICS must be on or off, got "false"/],
      [
        'OTEL_EXPORTER_OTLP_ENDPOINT',
        'collector:4318',
        /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
      ],
      ['REDIS_CLUSTER_NODES', '10.0.0.1', /REDIS_CLUSTER_NODES must be host:port entries/],
      ['REDIS_CLUSTER_NODES', 'a:7000,b:70000', /REDIS_CLUSTER_NODES must be host:port.*"b:70000"/],
      ['REDIS_WAIT_REPLICAS', '-1', /REDIS_WAIT_REPLICAS must be a whole number/],
      ['REDIS_WAIT_TIMEOUT_MS', '5000', /REDIS_WAIT_TIMEOUT_MS must be between 1 and 1500/],
      ['TIMER_QUEUES', '0', /TIMER_QUEUES must be between 1 and 64/],
      [
        'PAYSTATE_WEBHOOK_ALLOW_PRIVATE',
        'yes',
        /PAYSTATE_WEBHOOK_ALLOW_PRIVATE must be 1 or 0, got "yes"/,
      ],
      [
        'PAYSTATE_WEBHOOK_TIMEOUT_MS',
        '0',
        /PAYSTATE_WEBHOOK_TIMEOUT_MS must be between 1 and 60000/,
      ],
      ['PAYSTATE_WEBHOOK_TIMEOUT_MS', '10s', /PAYSTATE_WEBHOOK_TIMEOUT_MS must be a whole number/],
      [
        'PAYSTATE_WEBHOOK_RETRY_BASE_MS',
        '3600001',
        /PAYSTATE_WEBHOOK_RETRY_BASE_MS must be between 1 and 3600000/,
      ],
      ['PAYSTATE_WEBHOOK_RETRY_FOR_MS', '0', /PAYSTATE_WEBHOOK_RETRY_FOR_MS must be between 1 and/],
    ])('%s=%j', (name, value, message) => {
      const error = configError({ [name]: value });

      expect(error.message).toMatch(message);
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toContain(name);
    });
  });

  it.each([
    'redis://127.0.0.1',
    'redis://127.0.0.1:1',
    'redis://127.0.0.1:65535/3',
    'rediss://user:secret@redis.example:6380/2',
    'redis://[::1]:6379',
  ])('accepts REDIS_URL=%s', (url) => {
    expect(loadConfig({ REDIS_URL: url }).redisUrl).toBe(url);
  });

  it('reports every invalid variable at once', () => {
    const error = configError({ PORT: 'http', REDIS_URL: 'localhost', PAYSTATE_ROLES: 'all' });

    expect(error.name).toBe('ConfigError');
    expect(error.problems).toHaveLength(3);
    expect(error.message).toMatch(/^invalid configuration:\n/);
    for (const name of ['PORT', 'REDIS_URL', 'PAYSTATE_ROLES']) {
      expect(error.message).toContain(name);
    }
  });
});

describe('API keys and the listening address', () => {
  const digest = (c: string) => c.repeat(64);

  it('listens on loopback without keys, on every interface with them', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ PAYSTATE_API_KEYS: `acme=${digest('a')}` }).host).toBe('0.0.0.0');
    expect(loadConfig({ PAYSTATE_API_KEYS: `acme=${digest('a')}`, HOST: '::1' }).host).toBe('::1');
  });

  it('reads several tenants, and two keys of one tenant, in any case of hex', () => {
    const { apiKeys } = loadConfig({
      PAYSTATE_API_KEYS: ` acme=${digest('A')}, acme=${digest('b')},beta_2-x=${digest('c')} `,
    });
    expect(apiKeys.map((k) => [k.tenant, k.sha256.toString('hex')])).toEqual([
      ['acme', digest('a')],
      ['acme', digest('b')],
      ['beta_2-x', digest('c')],
    ]);
  });

  it.each([
    [`Acme=${'a'.repeat(64)}`, /tenant name must be 1-64 characters of a-z 0-9 _ -, got "Acme"/],
    [`a/b=${'a'.repeat(64)}`, /tenant name must be 1-64/],
    [`${'t'.repeat(65)}=${'a'.repeat(64)}`, /tenant name must be 1-64/],
    [`=${'a'.repeat(64)}`, /tenant name must be 1-64/],
    ['acme=my-secret-key', /must give the key's SHA-256 as 64 hex digits/],
    [`acme=${'a'.repeat(63)}`, /must give the key's SHA-256 as 64 hex digits/],
    ['acme', /must be tenant=<sha256 hex of the key>/],
    [`acme=${'a'.repeat(64)},`, /entry 2 is empty/],
    [`acme=${'a'.repeat(64)},beta=${'A'.repeat(64)}`, /repeats a key digest/],
  ])('refuses PAYSTATE_API_KEYS=%s', (value, message) => {
    const error = configError({ PAYSTATE_API_KEYS: value });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain('PAYSTATE_API_KEYS');
    expect(error.problems[0]).toMatch(message);
    // A digest given where a name should be, or a key given as a digest, is not echoed.
    expect(error.message).not.toContain('my-secret-key');
  });

  it.each(['0.0.0.0', '::', '192.0.2.10', 'example.com'])(
    'refuses HOST=%s without keys, naming what to set',
    (host) => {
      const error = configError({ HOST: host });
      expect(error.problems).toHaveLength(1);
      for (const name of ['HOST', 'PAYSTATE_API_KEYS', 'PAYSTATE_ALLOW_UNAUTHENTICATED']) {
        expect(error.problems[0]).toContain(name);
      }
    },
  );

  it.each(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST'])(
    'accepts the loopback HOST=%s without keys',
    (host) => {
      expect(loadConfig({ HOST: host }).host).toBe(host);
    },
  );

  it('starts open on the network when told so, or when no api role listens', () => {
    expect(loadConfig({ HOST: '0.0.0.0', PAYSTATE_ALLOW_UNAUTHENTICATED: '1' }).host).toBe(
      '0.0.0.0',
    );
    expect(loadConfig({ HOST: '0.0.0.0', PAYSTATE_ROLES: 'worker' }).host).toBe('0.0.0.0');
    expect(configError({ PAYSTATE_ALLOW_UNAUTHENTICATED: 'yes' }).message).toContain(
      'PAYSTATE_ALLOW_UNAUTHENTICATED must be 1 or 0',
    );
  });
});
