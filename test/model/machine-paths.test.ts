import { describe, expect, it } from 'vitest';
import { ReferenceService } from '../support/reference-service.ts';
import {
  describePath,
  MODEL_ACCOUNT,
  MODEL_INITIAL_BALANCE_CENTS,
  modelInput,
  shortestPaths,
  simplePaths,
  testParamsFor,
  type PaymentDriver,
} from './payment-model.ts';

/** Drives the pure machine with an in-memory ledger, as the runtime would drive it. */
function referenceDriver(): PaymentDriver {
  const token = modelInput.token;
  const service = new ReferenceService({
    initialBalanceCents: MODEL_INITIAL_BALANCE_CENTS,
    newInput: () => modelInput,
  });
  return {
    send(event) {
      service.send(token, event);
      return Promise.resolve();
    },
    observe({ status, balanceCents }) {
      expect(service.snapshotOf(token)?.value ?? 'pending').toBe(status);
      expect(service.ledger.balanceOf(MODEL_ACCOUNT)).toBe(balanceCents);
      return Promise.resolve();
    },
  };
}

describe.each([
  ['shortest', shortestPaths()],
  ['simple', simplePaths()],
])('%s paths through the machine', (_kind, paths) => {
  it.each(paths.map((path) => [describePath(path), path] as const))('%s', async (_name, path) => {
    await path.test(testParamsFor(referenceDriver()));
  });
});
