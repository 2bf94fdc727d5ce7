/**
 * Which webhook URLs the service may send to. A client registers the URL;
 * the service's own network makes the request. Without a guard, a tenant
 * could point an endpoint at the cloud's metadata service, at Redis on
 * loopback, or at anything on the private network, and read the answers
 * through delivery failures or timing. So:
 *
 * - only `http:` and `https:`, no credentials in the URL;
 * - the host, an IP literal or every address its name resolves to, must be
 *   a public unicast address: private (RFC 1918), loopback, link-local,
 *   unique-local, CGNAT, multicast, broadcast, unspecified, reserved,
 *   documentation, NAT64/6to4/Teredo (which embed an IPv4 address) and the
 *   IPv4-mapped or IPv4-compatible IPv6 forms of any of these are refused,
 *   as are the cloud metadata addresses by name;
 * - unless `allowPrivate` (PAYSTATE_WEBHOOK_ALLOW_PRIVATE=1), for a
 *   receiver on the operator's own network.
 *
 * The URL is parsed by the WHATWG parser, the one the HTTP client uses, so
 * odd forms (`0x7f.1`, `2130706433`, `[::ffff:127.0.0.1]`) are judged as the
 * address they will be connected to. A name is checked after resolution,
 * and the addresses checked are the ones returned: `guardedLookup` hands
 * them to the socket, so DNS cannot answer differently between the check
 * and the connection (rebinding).
 */
import { lookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** An address a name resolved to (or an IP literal), as node:dns gives it. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to all of its addresses (default: the system resolver). */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

export interface GuardOptions {
  /** Let private, loopback and link-local addresses through (never other schemes or credentials). */
  readonly allowPrivate: boolean;
  readonly resolve?: Resolver;
}

export type RefusalReason =
  /** Not a URL, or longer than MAX_WEBHOOK_URL_LENGTH. */
  | 'invalid_url'
  /** Not http: or https:. */
  | 'scheme'
  /** A user name or password in the URL. */
  | 'credentials'
  /** A cloud metadata service's address. */
  | 'metadata_address'
  /** Any other address that is not public unicast. */
  | 'private_address'
  /** The name has no address. */
  | 'unresolvable'
  /** The resolver failed (a timeout, a server failure): the same URL may pass later. */
  | 'dns_error';

export type GuardResult =
  | {
      readonly ok: true;
      readonly url: URL;
      /** The host as the URL names it, without IPv6 brackets. */
      readonly host: string;
      /** What the connection may use: the literal itself, or every address the name resolved to. */
      readonly addresses: readonly ResolvedAddress[];
    }
  | { readonly ok: false; readonly reason: RefusalReason; readonly message: string };

export const MAX_WEBHOOK_URL_LENGTH = 2048;

/**
 * Metadata services of the clouds, refused by name so the reason says what
 * they are (each is also outside public unicast): AWS, GCP, Azure and
 * OpenStack (169.254.169.254), AWS ECS task metadata (169.254.170.2), AWS
 * Time Sync (169.254.169.123), AWS over IPv6 (fd00:ec2::254), Alibaba
 * (100.100.100.200), Oracle (192.0.0.192).
 */
const METADATA_ADDRESSES: ReadonlySet<string> = new Set(
  [
    '169.254.169.254',
    '169.254.170.2',
    '169.254.169.123',
    'fd00:ec2::254',
    '100.100.100.200',
    '192.0.0.192',
  ].map((address) => ipaddr.parse(address).toNormalizedString()),
);

/** `::a.b.c.d`, the deprecated IPv4-compatible form: ipaddr.js calls it unicast. */
const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');

const defaultResolver: Resolver = async (hostname) => {
  const found: LookupAddress[] = await lookup(hostname, { all: true, verbatim: true });
  return found.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
};

/**
 * Why `address` may not be connected to, or null for a public unicast
 * address. The class named is ipaddr.js's (private, loopback, linkLocal,
 * uniqueLocal, carrierGradeNat, multicast, reserved, …).
 */
export function addressRefusal(
  address: string,
): { reason: 'metadata_address' | 'private_address'; message: string } | null {
  if (!ipaddr.isValid(address)) {
    return { reason: 'private_address', message: `${address} is not an IP address` };
  }
  let parsed = ipaddr.parse(address);
  if (METADATA_ADDRESSES.has(parsed.toNormalizedString())) {
    return { reason: 'metadata_address', message: `${address} is a cloud metadata address` };
  }
  let shown = address;
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) {
      parsed = v6.toIPv4Address();
      shown = `${address} (IPv4-mapped ${parsed.toString()})`;
      if (METADATA_ADDRESSES.has(parsed.toNormalizedString())) {
        return { reason: 'metadata_address', message: `${shown} is a cloud metadata address` };
      }
    }
  }
  const range = parsed.range();
  if (
    range === 'unicast' &&
    parsed.kind() === 'ipv6' &&
    (parsed as ipaddr.IPv6).match(IPV4_COMPATIBLE)
  ) {
    return {
      reason: 'private_address',
      message: `${address} is an IPv4-compatible IPv6 address, which is not public unicast`,
    };
  }
  if (range === 'unicast') return null;
  return { reason: 'private_address', message: `${shown} is a ${range} address` };
}

function refused(reason: RefusalReason, message: string): GuardResult {
  return { ok: false, reason, message };
}

/** The URL parsed and its scheme and credentials checked: nothing is resolved yet. */
export function parseWebhookUrl(raw: string): { url: URL; host: string } | GuardResult {
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) {
    return refused('invalid_url', `the URL must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return refused('invalid_url', 'the URL is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return refused('scheme', `the URL must be http or https, not ${url.protocol.slice(0, -1)}`);
  }
  if (url.username !== '' || url.password !== '') {
    return refused('credentials', 'the URL must not carry a user name or password');
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') return refused('invalid_url', 'the URL must name a host');
  return { url, host };
}

function vetAddresses(
  host: string,
  addresses: readonly ResolvedAddress[],
  allowPrivate: boolean,
): { ok: true } | { ok: false; reason: RefusalReason; message: string } {
  if (addresses.length === 0)
    return { ok: false, reason: 'unresolvable', message: `${host} has no address` };
  if (allowPrivate) return { ok: true };
  // Every address, not one: the connection may use any of them.
  for (const { address } of addresses) {
    const refusal = addressRefusal(address);
    if (refusal !== null) {
      const message = address === host ? refusal.message : `${host} resolves to ${refusal.message}`;
      return { ok: false, reason: refusal.reason, message };
    }
  }
  return { ok: true };
}

/** The host's addresses, each one allowed; or why the host is refused. */
async function resolveHost(
  host: string,
  { allowPrivate, resolve = defaultResolver }: GuardOptions,
): Promise<
  | { ok: true; addresses: readonly ResolvedAddress[] }
  | { ok: false; reason: RefusalReason; message: string }
> {
  const family = isIP(host);
  let addresses: readonly ResolvedAddress[];
  if (family !== 0) {
    addresses = [{ address: host, family: family === 6 ? 6 : 4 }];
  } else {
    // Names the resolver must not be asked about: they are this machine (RFC 6761).
    if (!allowPrivate && /(^|\.)localhost\.?$/i.test(host)) {
      return { ok: false, reason: 'private_address', message: `${host} is this machine` };
    }
    try {
      addresses = await resolve(host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') {
        return { ok: false, reason: 'unresolvable', message: `${host} does not resolve` };
      }
      return {
        ok: false,
        reason: 'dns_error',
        message: `${host} could not be resolved now${typeof code === 'string' ? ` (${code})` : ''}`,
      };
    }
  }
  const vetted = vetAddresses(host, addresses, allowPrivate);
  return vetted.ok ? { ok: true, addresses } : vetted;
}

/**
 * Parses and checks a webhook URL, resolving its host: at registration, and
 * again before each delivery. Never throws.
 */
export async function checkWebhookUrl(raw: string, options: GuardOptions): Promise<GuardResult> {
  const parsed = parseWebhookUrl(raw);
  if ('ok' in parsed) return parsed;
  const resolved = await resolveHost(parsed.host, options);
  if (!resolved.ok) return refused(resolved.reason, resolved.message);
  return { ok: true, url: parsed.url, host: parsed.host, addresses: resolved.addresses };
}

/** A connection refused by the guard at connect time; the cause of the HTTP client's error. */
export class AddressRefusedError extends Error {
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
    this.name = 'AddressRefusedError';
  }
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for net/tls connect options (undici's `connect.lookup`): it
 * resolves the name, checks every address, and gives the socket exactly
 * the addresses it checked. Each new connection is checked, so a
 * keep-alive pool holds only connections to vetted addresses. (A socket to
 * an IP literal never calls lookup: check the URL first, checkWebhookUrl.)
 */
export function guardedLookup(options: GuardOptions) {
  return (
    hostname: string,
    lookupOptions: { family?: number | string; all?: boolean },
    callback: LookupCallback,
  ): void => {
    resolveHost(hostname.replace(/^\[(.*)\]$/, '$1'), options).then(
      (resolved) => {
        if (!resolved.ok) {
          callback(new AddressRefusedError(resolved.reason, resolved.message), []);
          return;
        }
        const wanted = Number(lookupOptions.family ?? 0);
        const usable =
          wanted === 4 || wanted === 6
            ? resolved.addresses.filter((a) => a.family === wanted)
            : resolved.addresses;
        if (lookupOptions.all === true) {
          callback(
            null,
            usable.map(({ address, family }) => ({ address, family })),
          );
          return;
        }
        const first = usable[0];
        if (first === undefined) {
          callback(
            Object.assign(new Error(`${hostname} has no IPv${wanted} address`), {
              code: 'ENOTFOUND',
            }),
            '',
          );
          return;
        }
        callback(null, first.address, first.family);
      },
      (error: unknown) => {
        callback(error instanceof Error ? error : new Error(String(error)), []);
      },
    );
  };
}
