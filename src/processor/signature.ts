/**
 * The one webhook signature scheme, for the processor's webhooks to us
 * (`Processor-Signature`) and ours to our clients' endpoints
 * (`Paystate-Signature`):
 *
 *   t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=…]
 *
 * The timestamp is inside the signed text, so a captured request cannot be
 * replayed with a fresh `t`; the tolerance bounds how long a captured one
 * stays good. Several `v1` entries may be present while a secret is rotated:
 * one match is enough. Verification works on the raw body bytes, never on
 * re-serialised JSON, which would not be byte-identical.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const DEFAULT_TOLERANCE_S = 300;

export type SignatureFailure =
  /** The header is missing or not `t=…,v1=…`. */
  | 'malformed'
  /** Older than the tolerance. */
  | 'stale'
  /** Further in the future than the tolerance (a sender's clock, or a forged `t`). */
  | 'future'
  /** No `v1` entry is the HMAC of this body at this time with this secret. */
  | 'mismatch'
  /** No secret configured: nothing can be verified, so nothing is accepted. */
  | 'no_secret';

export type SignatureCheck =
  | { readonly ok: true; readonly timestamp: number }
  | { readonly ok: false; readonly reason: SignatureFailure; readonly message: string };

export interface VerifyOptions {
  /** Largest accepted distance between `t` and now, either way (default 300). */
  readonly toleranceS?: number;
  /** The clock to judge `t` by (default: the system clock). */
  readonly now?: Date;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const UNIX_SECONDS = /^[0-9]{1,12}$/;

function hmacHex(secret: string, timestamp: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** The header value for `body` sent at `timestamp` (unix seconds). */
export function signPayload(secret: string, body: string | Buffer, timestamp: number): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError(`signature timestamp must be whole unix seconds, got ${timestamp}`);
  }
  return `t=${timestamp},v1=${hmacHex(secret, timestamp, body)}`;
}

function failure(reason: SignatureFailure, message: string): SignatureCheck {
  return { ok: false, reason, message };
}

/**
 * Checks `header` against the raw `body`. Never throws for what a sender
 * controls: every refusal is a result with a reason a receiver can log
 * (and should answer 400 to, applying nothing).
 */
export function verifySignature(
  header: string | undefined,
  body: string | Buffer,
  secret: string,
  { toleranceS = DEFAULT_TOLERANCE_S, now = new Date() }: VerifyOptions = {},
): SignatureCheck {
  if (secret === '') return failure('no_secret', 'no signing secret is configured');
  if (header === undefined || header === '') {
    return failure('malformed', 'the signature header is missing');
  }
  let timestamp: number | null = null;
  const signatures: Buffer[] = [];
  for (const entry of header.split(',')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) return failure('malformed', 'each signature entry must be <scheme>=<value>');
    const scheme = entry.slice(0, eq).trim();
    const value = entry.slice(eq + 1).trim();
    if (scheme === 't') {
      if (timestamp !== null) return failure('malformed', 'the signature has two timestamps');
      if (!UNIX_SECONDS.test(value)) {
        return failure('malformed', 'the signature timestamp must be whole unix seconds');
      }
      timestamp = Number(value);
    } else if (scheme === 'v1') {
      if (!SHA256_HEX.test(value)) {
        return failure('malformed', 'a v1 signature must be 64 lower-case hex digits');
      }
      signatures.push(Buffer.from(value, 'hex'));
    }
    // Other schemes are skipped: a sender may add a newer one beside v1.
  }
  if (timestamp === null) return failure('malformed', 'the signature has no timestamp (t=)');
  if (signatures.length === 0) return failure('malformed', 'the signature has no v1 entry');

  const age = Math.floor(now.getTime() / 1000) - timestamp;
  if (age > toleranceS) {
    return failure('stale', `the signature is ${age} s old; at most ${toleranceS} s is accepted`);
  }
  if (-age > toleranceS) {
    return failure(
      'future',
      `the signature is dated ${-age} s ahead; at most ${toleranceS} s is accepted`,
    );
  }

  const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex');
  // Every entry is compared, matched or not, so the time taken does not tell which one matched.
  let matched = false;
  for (const signature of signatures) {
    if (timingSafeEqual(signature, expected)) matched = true;
  }
  return matched
    ? { ok: true, timestamp }
    : failure('mismatch', 'no v1 signature matches the body and timestamp');
}
