/** API keys for tests: plaintext keys, and the PAYSTATE_API_KEYS that configures their digests. */
import { createHash } from 'node:crypto';

/** `printf %s "$KEY" | sha256sum`, as docs/security.md has operators do it. */
export const sha256Hex = (key: string): string =>
  createHash('sha256').update(key, 'utf8').digest('hex');

/** Two tenants; alpha has two keys at once, as during a rotation. */
export const TEST_KEYS = {
  alpha: 'sk_alpha_9f1c3e7a5b2d4c6e8f0a1b3c5d7e9f1a',
  alphaRotated: 'sk_alpha_new_2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e1b',
  beta: 'sk_beta_7e5c3a1f9d7b5e3c1a9f7d5b3e1c9a7f',
} as const;

export const TEST_API_KEYS = [
  `alpha=${sha256Hex(TEST_KEYS.alpha)}`,
  `alpha=${sha256Hex(TEST_KEYS.alphaRotated)}`,
  `beta=${sha256Hex(TEST_KEYS.beta)}`,
].join(',');

export const bearer = (key: string): Record<string, string> => ({
  authorization: `Bearer ${key}`,
});
