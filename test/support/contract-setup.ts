/** Fails a test during which a response broke the OpenAPI contract, even if the error was caught. */
import { afterEach } from 'vitest';
import { takeViolations } from './contract.ts';

afterEach(() => {
  const seen = takeViolations();
  if (seen.length > 0) {
    throw new Error(`responses outside the OpenAPI document:\n${seen.join('\n')}`);
  }
});
