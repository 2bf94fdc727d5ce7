import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signPayload, verifySignature } from '../../src/processor/signature.ts';

const SECRET = 'whsec_test_secret';
const BODY = '{"id":"evt_1","type":"charge.succeeded","data":{"id":"ch_1"}}';
const T = 1_800_000_000;
const at = (unixSeconds: number) => new Date(unixSeconds * 1000);

describe('signPayload', () => {
  it('writes t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">', () => {
    const expected = createHmac('sha256', SECRET).update(`${T}.${BODY}`).digest('hex');
    expect(signPayload(SECRET, BODY, T)).toBe(`t=${T},v1=${expected}`);
  });

  it('signs the raw bytes of a Buffer body the same as its text', () => {
    expect(signPayload(SECRET, Buffer.from(BODY), T)).toBe(signPayload(SECRET, BODY, T));
  });
});

describe('verifySignature', () => {
  const header = signPayload(SECRET, BODY, T);

  it('accepts a fresh signature of the body with the secret', () => {
    expect(verifySignature(header, BODY, SECRET, { now: at(T + 10) })).toEqual({
      ok: true,
      timestamp: T,
    });
  });

  it('accepts a Buffer body', () => {
    expect(verifySignature(header, Buffer.from(BODY), SECRET, { now: at(T) }).ok).toBe(true);
  });

  it('refuses a signature older than the tolerance (300 s by default)', () => {
    expect(verifySignature(header, BODY, SECRET, { now: at(T + 300) }).ok).toBe(true);
    expect(verifySignature(header, BODY, SECRET, { now: at(T + 301) })).toEqual({
      ok: false,
      reason: 'stale',
      message: expect.stringContaining('301 s old') as string,
    });
  });

  it('refuses a timestamp further in the future than the tolerance', () => {
    expect(verifySignature(header, BODY, SECRET, { now: at(T - 301) })).toMatchObject({
      ok: false,
      reason: 'future',
    });
    expect(verifySignature(header, BODY, SECRET, { now: at(T - 300) }).ok).toBe(true);
  });

  it('takes a tolerance of its own', () => {
    expect(
      verifySignature(header, BODY, SECRET, { now: at(T + 20), toleranceS: 10 }),
    ).toMatchObject({ ok: false, reason: 'stale' });
  });

  it('refuses a tampered body', () => {
    const tampered = BODY.replace('ch_1', 'ch_2');
    expect(verifySignature(header, tampered, SECRET, { now: at(T) })).toMatchObject({
      ok: false,
      reason: 'mismatch',
    });
  });

  it('refuses a signature made with another secret', () => {
    expect(verifySignature(header, BODY, 'another', { now: at(T) })).toMatchObject({
      ok: false,
      reason: 'mismatch',
    });
  });

  it('refuses a timestamp changed after signing', () => {
    const moved = header.replace(`t=${T}`, `t=${T + 1}`);
    expect(verifySignature(moved, BODY, SECRET, { now: at(T) })).toMatchObject({
      ok: false,
      reason: 'mismatch',
    });
  });

  it('accepts any matching v1 entry, so a secret can be rotated', () => {
    const old = signPayload('old-secret', BODY, T).split(',')[1] ?? '';
    const rotated = `${header},${old}`;
    expect(verifySignature(rotated, BODY, SECRET, { now: at(T) }).ok).toBe(true);
    expect(verifySignature(rotated, BODY, 'old-secret', { now: at(T) }).ok).toBe(true);
    expect(verifySignature(`t=${T},${old}`, BODY, SECRET, { now: at(T) })).toMatchObject({
      ok: false,
      reason: 'mismatch',
    });
  });

  it('ignores schemes it does not know beside a v1 entry', () => {
    const withV0 = `${header},v0=deadbeef`;
    expect(verifySignature(withV0, BODY, SECRET, { now: at(T) }).ok).toBe(true);
  });

  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['no timestamp', 'v1=abcd'],
    ['two timestamps', `t=${T},t=${T},v1=abcd`],
    ['a timestamp that is not a number', 't=soon,v1=abcd'],
    ['a fractional timestamp', `t=${T}.5,v1=abcd`],
    ['no v1 entry', `t=${T}`],
    ['an entry without =', `t=${T},v1`],
    ['a v1 entry that is not hex', `t=${T},v1=zz`],
    ['a v1 entry of the wrong length', `t=${T},v1=abcd`],
  ])('refuses a malformed header: %s', (_what, bad) => {
    expect(verifySignature(bad, BODY, SECRET, { now: at(T) })).toMatchObject({
      ok: false,
      reason: 'malformed',
    });
  });

  it('refuses every header when the secret is empty', () => {
    expect(verifySignature(signPayload('', BODY, T), BODY, '', { now: at(T) })).toMatchObject({
      ok: false,
      reason: 'no_secret',
    });
  });
});
