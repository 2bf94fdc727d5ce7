import { defineConfig } from 'vitest/config';

/**
 * The tests `npm run mutate:machine` runs against each mutant of the payment
 * machine and the engine's pure modules: fast, in-process. Left out: the
 * suites that walk the 1,754 generated paths (machine-paths, step-equivalence,
 * coverage), because most mutants of the machine definition are static, so
 * each reruns every test, and those suites would make that hours (`npm test`
 * still runs them); and the engine's Redis tests, which judge
 * durable-machine.ts (vitest.mutate-engine.config.ts).
 */
export default defineConfig({
  test: {
    include: [
      'test/unit/payment.machine.test.ts',
      'test/unit/transitions.test.ts',
      'test/unit/payment-record.test.ts',
      'test/unit/unchanging-events.test.ts',
    ],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
