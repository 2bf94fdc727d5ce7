/**
 * The webhook URL guard, by what it refuses. Nothing here opens a
 * connection: names are resolved by an injected resolver, and the one
 * lookup that reaches a socket option is called directly.
 */
import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import {
  checkWebhookUrl,
  guardedLookup,
  AddressRefusedError,
  type ResolvedAddress,
  type Resolver,
} from '../../src/webhooks/address-guard.ts';

/** A resolver that knows only the names it is given, and fails the test if asked about another. */
function resolverOf(names: Record<string, readonly string[]>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  const resolve = (hostname: string): Promise<readonly ResolvedAddress[]> => {
    asked.push(hostname);
    const addresses = names[hostname];
    if (addresses === undefined) {
      return Promise.reject(
        Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }),
      );
    }
    return Promise.resolve(
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }) as const),
    );
  };
  return Object.assign(resolve, { asked });
}

const publicNames = resolverOf({ 'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07::1'] });

async function refusal(url: string, resolve: Resolver = publicNames) {
  const result = await checkWebhookUrl(url, { allowPrivate: false, resolve });
  if (result.ok) throw new Error(`${url} was allowed`);
  return result;
}

describe('the webhook URL guard', () => {
  it('allows an https or http URL whose name resolves to public addresses only, and returns them', async () => {
    const result = await checkWebhookUrl('https://hooks.example.com/paystate?x=1', {
      allowPrivate: false,
      resolve: publicNames,
    });
    expect(result).toMatchObject({
      ok: true,
      host: 'hooks.example.com',
      addresses: [
        { address: '93.184.215.14', family: 4 },
        { address: '2606:2800:21f:cb07::1', family: 6 },
      ],
    });
    const literal = await checkWebhookUrl('http://93.184.215.14:8443/', { allowPrivate: false });
    expect(literal).toMatchObject({ ok: true, addresses: [{ address: '93.184.215.14' }] });
  });

  it.each([
    ['loopback', 'http://127.0.0.1/'],
    ['loopback', 'http://127.1.2.3:8080/hook'],
    ['private', 'http://10.0.0.1/'],
    ['private', 'http://172.16.5.4/'],
    ['private', 'http://172.31.255.255/'],
    ['private', 'http://192.168.1.1/'],
    ['linkLocal', 'http://169.254.1.1/'],
    ['carrierGradeNat', 'http://100.64.0.1/'],
    ['unspecified', 'http://0.0.0.0/'],
    ['multicast', 'http://224.0.0.1/'],
    ['broadcast', 'http://255.255.255.255/'],
    ['reserved', 'http://240.0.0.1/'],
    ['reserved', 'http://192.0.2.10/'],
    ['reserved', 'http://198.18.0.1/'],
    ['loopback', 'http://[::1]/'],
    ['unspecified', 'http://[::]/'],
    ['linkLocal', 'http://[fe80::1]/'],
    ['uniqueLocal', 'http://[fc00::1]/'],
    ['uniqueLocal', 'http://[fd12:3456::1]/'],
    ['multicast', 'http://[ff02::1]/'],
    ['reserved', 'http://[2001:db8::1]/'],
    ['rfc6052', 'http://[64:ff9b::a00:1]/'],
    ['6to4', 'http://[2002:7f00:1::]/'],
    ['teredo', 'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/'],
  ])('refuses a %s IP literal: %s', async (range, url) => {
    const result = await refusal(url);
    expect(result.reason).toBe('private_address');
    expect(result.message).toContain(`a ${range} address`);
  });

  it.each([
    ['hex and short IPv4', 'http://0x7f.1/', 'loopback'],
    ['a decimal IPv4', 'http://2130706433/', 'loopback'],
    ['an octal IPv4', 'http://0177.0.0.1/', 'loopback'],
    ['a two-part IPv4', 'http://10.1/', 'private'],
    ['an IPv4-mapped IPv6 of loopback', 'http://[::ffff:127.0.0.1]/', 'loopback'],
    ['an IPv4-mapped IPv6 in hex', 'http://[::ffff:7f00:1]/', 'loopback'],
    ['an IPv4-mapped IPv6 of a private address', 'http://[::ffff:192.168.0.1]/', 'private'],
    ['a trailing-dot IPv4', 'http://127.0.0.1./', 'loopback'],
  ])('refuses %s (%s) as the address it is', async (_form, url, range) => {
    const result = await refusal(url);
    expect(result.reason).toBe('private_address');
    expect(result.message).toContain(`a ${range} address`);
  });

  it('refuses an IPv4-compatible IPv6 address', async () => {
    const result = await refusal('http://[::127.0.0.1]/');
    expect(result.reason).toBe('private_address');
    expect(result.message).toContain('IPv4-compatible');
  });

  it.each([
    ['http://169.254.169.254/latest/meta-data/'],
    ['http://169.254.170.2/v2/credentials'],
    ['http://[fd00:ec2::254]/'],
    ['http://100.100.100.200/'],
    ['http://192.0.0.192/'],
    ['http://[::ffff:169.254.169.254]/'],
    ['http://0xa9fea9fe/'],
  ])('refuses the cloud metadata address %s by name', async (url) => {
    const result = await refusal(url);
    expect(result.reason).toBe('metadata_address');
    expect(result.message).toContain('cloud metadata address');
  });

  it('refuses a name the resolver maps to a private address, checked after DNS', async () => {
    const resolve = resolverOf({
      'internal.example.com': ['10.1.2.3'],
      'mixed.example.com': ['93.184.215.14', '192.168.0.7'],
      'metadata.example.com': ['169.254.169.254'],
      'v6.example.com': ['::ffff:127.0.0.1'],
    });
    const internal = await refusal('https://internal.example.com/hook', resolve);
    expect(internal).toMatchObject({ reason: 'private_address' });
    expect(internal.message).toBe('internal.example.com resolves to 10.1.2.3 is a private address');
    // One private address among public ones is enough: the connection may pick it.
    expect((await refusal('https://mixed.example.com/', resolve)).message).toContain('192.168.0.7');
    expect((await refusal('https://metadata.example.com/', resolve)).reason).toBe(
      'metadata_address',
    );
    expect((await refusal('https://v6.example.com/', resolve)).message).toContain(
      'a loopback address',
    );
    expect(resolve.asked).toEqual([
      'internal.example.com',
      'mixed.example.com',
      'metadata.example.com',
      'v6.example.com',
    ]);
  });

  it('refuses localhost names without asking the resolver', async () => {
    const resolve = resolverOf({});
    expect((await refusal('http://localhost:8080/', resolve)).reason).toBe('private_address');
    expect((await refusal('http://api.localhost/', resolve)).reason).toBe('private_address');
    expect(resolve.asked).toEqual([]);
  });

  it('refuses a name that does not resolve, and says a failing resolver may pass later', async () => {
    expect(await refusal('https://nowhere.example.com/')).toMatchObject({
      reason: 'unresolvable',
      message: 'nowhere.example.com does not resolve',
    });
    const failing: Resolver = () =>
      Promise.reject(Object.assign(new Error('queryA ETIMEOUT'), { code: 'ETIMEOUT' }));
    expect(await refusal('https://hooks.example.com/', failing)).toMatchObject({
      reason: 'dns_error',
    });
    expect(await refusal('https://empty.example.com/', () => Promise.resolve([]))).toMatchObject({
      reason: 'unresolvable',
    });
  });

  it.each([
    ['ftp://hooks.example.com/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['gopher://hooks.example.com/', 'scheme'],
    ['javascript:alert(1)', 'scheme'],
    ['https://user:pass@hooks.example.com/', 'credentials'],
    ['https://user@hooks.example.com/', 'credentials'],
    ['not a url', 'invalid_url'],
    ['/relative/path', 'invalid_url'],
    ['http://', 'invalid_url'],
    ['http://[fe80::1%25eth0]/', 'invalid_url'],
  ])('refuses %s (%s)', async (url, reason) => {
    expect((await refusal(url)).reason).toBe(reason);
  });

  it('refuses a URL longer than 2048 characters', async () => {
    const result = await refusal(`https://hooks.example.com/${'a'.repeat(2048)}`);
    expect(result).toMatchObject({
      reason: 'invalid_url',
      message: 'the URL must be at most 2048 characters',
    });
  });

  it('lets private and loopback addresses through with allowPrivate, but never other schemes or credentials', async () => {
    const resolve = resolverOf({ 'internal.example.com': ['10.1.2.3'] });
    for (const url of [
      'http://127.0.0.1:9000/',
      'http://[::1]/',
      'http://169.254.169.254/',
      'https://internal.example.com/',
    ]) {
      expect((await checkWebhookUrl(url, { allowPrivate: true, resolve })).ok, url).toBe(true);
    }
    for (const url of ['ftp://127.0.0.1/', 'http://a:b@127.0.0.1/']) {
      expect((await checkWebhookUrl(url, { allowPrivate: true, resolve })).ok, url).toBe(false);
    }
  });
});

describe('the guarded lookup a delivery connects through', () => {
  function lookupOnce(
    lookup: ReturnType<typeof guardedLookup>,
    hostname: string,
    options: { family?: number; all?: boolean },
  ) {
    return new Promise<{ error: Error | null; address: string | LookupAddress[]; family?: number }>(
      (resolve) => {
        lookup(hostname, options, (error, address, family) => {
          resolve({ error, address, ...(family === undefined ? {} : { family }) });
        });
      },
    );
  }

  it('gives the socket exactly the addresses it checked, in both callback forms', async () => {
    const lookup = guardedLookup({ allowPrivate: false, resolve: publicNames });
    expect(await lookupOnce(lookup, 'hooks.example.com', { all: true })).toEqual({
      error: null,
      address: [
        { address: '93.184.215.14', family: 4 },
        { address: '2606:2800:21f:cb07::1', family: 6 },
      ],
    });
    expect(await lookupOnce(lookup, 'hooks.example.com', { family: 6 })).toEqual({
      error: null,
      address: '2606:2800:21f:cb07::1',
      family: 6,
    });
  });

  it('fails the connection when the name now resolves to a private address (rebinding)', async () => {
    let answer = ['93.184.215.14'];
    const rebinding: Resolver = (hostname) =>
      Promise.resolve(
        hostname === 'rebind.example.com' ? answer.map((address) => ({ address, family: 4 })) : [],
      );
    const lookup = guardedLookup({ allowPrivate: false, resolve: rebinding });
    expect((await lookupOnce(lookup, 'rebind.example.com', { all: true })).error).toBeNull();
    answer = ['127.0.0.1'];
    const second = await lookupOnce(lookup, 'rebind.example.com', { all: true });
    expect(second.error).toBeInstanceOf(AddressRefusedError);
    expect(second.error?.message).toBe(
      'rebind.example.com resolves to 127.0.0.1 is a loopback address',
    );
  });
});
