/**
 * The inspector with API keys: two tenants pay the same token from the same
 * account id, and each sees, on the page and in every answer it polls, its
 * own token and account id as it named them, never the stored `t/<tenant>/…`
 * form, and nothing of the other's.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const TENANTS = { alpha: bearer(TEST_KEYS.alpha), beta: bearer(TEST_KEYS.beta) } as const;
const STORED = /t\/(alpha|beta)\//;

describe('the inspector with API keys', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_API_KEYS: TEST_API_KEYS }),
    );
    for (const [name, headers] of Object.entries(TENANTS)) {
      const paid = await service.request('POST', '/payments', {
        headers: { ...headers, 'Idempotency-Key': 'insp-shared' },
        body: { accountId: 'acct-shared', amountCents: name === 'alpha' ? 100 : 200 },
      });
      expect(paid.status).toBe(201);
    }
  });
  afterAll(async () => {
    await service.stop();
  });

  it("shows each tenant its own token and account id, never the stored form or the other's", async () => {
    for (const [name, headers] of Object.entries(TENANTS)) {
      const found = await service.request('GET', '/inspect/api/keys/insp-shared', { headers });
      expect(found.status).toBe(200);
      expect(found.body).toMatchObject({
        key: 'insp-shared',
        state: 'processed',
        fields: { accountId: 'acct-shared', amountCents: name === 'alpha' ? 100 : 200 },
      });
      expect(JSON.stringify(found.body)).not.toMatch(STORED);

      const listed = await service.request('GET', '/inspect/api/states/processed', { headers });
      expect(listed.status).toBe(200);
      const keys = (listed.body as { keys: { key: string }[] }).keys.map((k) => k.key);
      expect(keys).toEqual(['insp-shared']);
      expect(JSON.stringify(listed.body)).not.toMatch(STORED);

      const counts = await service.request('GET', '/inspect/api/counts', { headers });
      expect(counts.body).toMatchObject({ counts: { processed: 1 } });

      const page = await service.request('GET', '/inspect', { headers });
      expect(page.status).toBe(200);
      expect(String(page.body)).not.toMatch(STORED);
    }
  });
});
