/**
 * `npm run bench:soak -- --minutes 30`: storage under churn. Mixed traffic
 * (new payments, replays, cancellations, declines) at a steady rate against
 * the built service with a short expiry and retention, so tokens are paid,
 * expired and removed all the time. Every sample (a minute by default) it
 * records Redis's used_memory, the number of keys, the members of the state
 * index, removal schedule and outbox, the operation ids and ledger entries
 * of the accounts, and the service process's RSS; at the end it writes
 * bench/results/soak.json and the soak section of docs/benchmarks.md (a
 * table and an ASCII plot). Once the first expiry + retention has passed,
 * every curve should be flat.
 *
 * Options: --minutes (30), --rate requests/s (40), --expiry-ms (20000),
 * --retention-ms (20000), --sample-s (60), --no-doc (results file only).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { cleanUpOnSignals, cleanupAll } from './cleanup.ts';
import { startDeployment, INITIAL_BALANCE_CENTS, type Deployment } from './deployment.ts';
import { describeEnvironment, type Environment } from './environment.ts';
import { readRssBytes } from './process-stats.ts';
import { accountIds, tokenPrefix } from './requests.ts';
import { buildService, ROOT } from './service-process.ts';

interface Options {
  readonly minutes: number;
  readonly rate: number;
  readonly expiryMs: number;
  readonly retentionMs: number;
  readonly sampleS: number;
  readonly doc: boolean;
}

export interface SoakSample {
  /** Seconds since the traffic started. */
  readonly atS: number;
  readonly usedMemory: number;
  readonly keys: number;
  /** Members of the state index's sets (every state) and of the removal schedule. */
  readonly indexMembers: number;
  readonly removalMembers: number;
  readonly outboxMembers: number;
  /** Fields of the accounts' operation hashes, entries of their ledgers. */
  readonly operationIds: number;
  readonly ledgerEntries: number;
  /** Keys of tokens (record, lock) and of the timer queue. */
  readonly tokenKeys: number;
  readonly queueKeys: number;
  readonly serviceRss: number | null;
  /** Requests answered since the previous sample, by kind. */
  readonly answered: number;
}

export interface SoakResult {
  readonly options: Options;
  readonly accounts: number;
  readonly ledgerLimit: number;
  readonly operationRetentionMs: number;
  readonly environment: Environment;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly requests: Readonly<Record<string, number>>;
  readonly statuses: Readonly<Record<string, number>>;
  readonly samples: readonly SoakSample[];
}

const ACCOUNTS = 20;
const LEDGER_LIMIT = 100;
/** Requests in flight at most: the rate is kept unless the service falls behind. */
const MAX_IN_FLIGHT = 32;
const SOAK_START = '<!-- soak:start -->';
const SOAK_END = '<!-- soak:end -->';

function parseArgs(argv: readonly string[]): Options {
  const values: Record<string, number> = {
    minutes: 30,
    rate: 40,
    'expiry-ms': 20_000,
    'retention-ms': 20_000,
    'sample-s': 60,
  };
  let doc = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--no-doc') {
      doc = false;
      continue;
    }
    const name = arg.replace(/^--/, '').split('=')[0] ?? '';
    if (!arg.startsWith('--') || !(name in values)) {
      throw new Error(
        `unknown argument "${arg}"; use --minutes, --rate, --expiry-ms, --retention-ms, --sample-s, --no-doc`,
      );
    }
    const raw = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
    values[name] = value;
  }
  return {
    minutes: values.minutes ?? 30,
    rate: values.rate ?? 40,
    expiryMs: values['expiry-ms'] ?? 20_000,
    retentionMs: values['retention-ms'] ?? 20_000,
    sampleS: values['sample-s'] ?? 60,
    doc,
  };
}

type Kind = 'pay' | 'replay' | 'cancel' | 'decline';

/** The mix, out of 20: 9 new payments, 5 replays, 3 cancellations, 3 declines. */
const MIX: readonly Kind[] = [
  ...Array<Kind>(9).fill('pay'),
  ...Array<Kind>(5).fill('replay'),
  ...Array<Kind>(3).fill('cancel'),
  ...Array<Kind>(3).fill('decline'),
];

/** Sums the sizes of every key under the prefix, by what it is. */
async function sample(
  deployment: Deployment,
  started: number,
  answered: number,
): Promise<SoakSample> {
  const { redis, keys, prefix } = deployment;
  const client = redis.client;
  let indexMembers = 0;
  let removalMembers = 0;
  let outboxMembers = 0;
  let operationIds = 0;
  let ledgerEntries = 0;
  let tokenKeys = 0;
  let queueKeys = 0;
  let cursor = '0';
  do {
    const [next, found] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    const pipeline = client.pipeline();
    const sized: { key: string; kind: string }[] = [];
    for (const key of found) {
      if (key.startsWith(`${keys.queuePrefix}:`)) queueKeys++;
      else if (key === keys.indexRemovals) sized.push({ key, kind: 'removals' });
      else if (key.startsWith(keys.stateIndex(''))) sized.push({ key, kind: 'index' });
      else if (key === keys.outbox) sized.push({ key, kind: 'outbox' });
      else if (key.endsWith('}:ops')) sized.push({ key, kind: 'ops' });
      else if (key.endsWith('}:ledger')) sized.push({ key, kind: 'ledger' });
      else if (!key.includes('{account:') && /\{.*\}:(state|lock)$/.test(key)) tokenKeys++;
    }
    for (const { key, kind } of sized) {
      if (kind === 'ops') pipeline.hlen(key);
      else if (kind === 'ledger') pipeline.llen(key);
      else pipeline.zcard(key);
    }
    const replies = (await pipeline.exec()) ?? [];
    sized.forEach(({ kind }, i) => {
      const n = Number(replies[i]?.[1] ?? 0);
      if (kind === 'removals') removalMembers += n;
      else if (kind === 'index') indexMembers += n;
      else if (kind === 'outbox') outboxMembers += n;
      else if (kind === 'ops') operationIds += n;
      else ledgerEntries += n;
    });
  } while (cursor !== '0');
  const api = deployment.apis[0];
  return {
    atS: Math.round((Date.now() - started) / 1000),
    usedMemory: Number((await redis.info('memory')).used_memory),
    keys: await client.dbsize(),
    indexMembers,
    removalMembers,
    outboxMembers,
    operationIds,
    ledgerEntries,
    tokenKeys,
    queueKeys,
    serviceRss: api === undefined ? null : readRssBytes(api.pid),
    answered,
  };
}

async function soak(options: Options): Promise<SoakResult> {
  const operationRetentionMs = options.expiryMs + options.retentionMs + 60_000;
  const deployment = await startDeployment({
    appendfsync: 'everysec',
    apiProcesses: 1,
    env: {
      PAYMENT_EXPIRY_MS: String(options.expiryMs),
      EXPIRED_RETENTION_MS: String(options.retentionMs),
      ACCOUNT_LEDGER_LIMIT: String(LEDGER_LIMIT),
      ACCOUNT_OPERATION_RETENTION_MS: String(operationRetentionMs),
    },
  });
  const startedAt = new Date().toISOString();
  const url = deployment.urls[0] ?? '';
  const accounts = accountIds('soak', ACCOUNTS);
  const prefix = tokenPrefix('soak');
  const requests: Record<string, number> = {};
  const statuses: Record<string, number> = {};
  /** Tokens paid lately, with their account: replays and cancellations pick from them. */
  const recent: { token: string; account: string }[] = [];
  let sent = 0;
  let inFlight = 0;
  let answered = 0;
  const send = async (kind: Kind) => {
    const i = sent++;
    let path = '/payments';
    let token = `${prefix}-${i}`;
    let body: string | undefined;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    // Not by `i`: the mix is by `i`, and every account must see every kind.
    let account = accounts[Math.floor(Math.random() * ACCOUNTS)] ?? 'soak-0';
    const earlier = recent[Math.floor(Math.random() * recent.length)];
    if ((kind === 'replay' || kind === 'cancel') && earlier !== undefined) {
      // A replay is the same body again.
      ({ token, account } = earlier);
    } else if (kind !== 'decline') kind = 'pay';
    if (kind === 'cancel') path = `/payments/${token}/cancel`;
    else {
      headers['idempotency-key'] = token;
      // A decline: more than any balance holds (the initial balance is the bench's).
      const amount = kind === 'decline' ? INITIAL_BALANCE_CENTS * 2 : 100;
      body = `{"accountId":"${account}","amountCents":${amount}}`;
    }
    requests[kind] = (requests[kind] ?? 0) + 1;
    inFlight++;
    try {
      const reply = await fetch(`${url}${path}`, {
        method: 'POST',
        headers,
        ...(body === undefined ? {} : { body }),
      });
      await reply.arrayBuffer();
      statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
      if (kind === 'pay' && reply.status === 201) {
        recent.push({ token, account });
        if (recent.length > 200) recent.shift();
      }
    } catch {
      statuses.error = (statuses.error ?? 0) + 1;
    } finally {
      inFlight--;
      answered++;
    }
  };

  const samples: SoakSample[] = [];
  const started = Date.now();
  const end = started + options.minutes * 60_000;
  samples.push(await sample(deployment, started, 0));
  console.log(JSON.stringify(samples.at(-1)));
  let nextSample = started + options.sampleS * 1000;
  let lastAnswered = 0;
  const interval = 1000 / options.rate;
  let due = started;
  try {
    while (Date.now() < end) {
      const crashes = deployment.crashes();
      if (crashes.length > 0) throw new Error(crashes.join('\n'));
      const now = Date.now();
      if (now >= nextSample) {
        samples.push(await sample(deployment, started, answered - lastAnswered));
        lastAnswered = answered;
        console.log(JSON.stringify(samples.at(-1)));
        nextSample += options.sampleS * 1000;
        continue;
      }
      if (now >= due && inFlight < MAX_IN_FLIGHT) {
        void send(MIX[sent % MIX.length] ?? 'pay');
        due += interval;
        // Fallen behind (a stall): the rate is kept from now, not caught up.
        if (Date.now() - due > 1000) due = Date.now();
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.min(due - now, 20))));
    }
    samples.push(await sample(deployment, started, answered - lastAnswered));
    console.log(JSON.stringify(samples.at(-1)));
  } finally {
    const problems = await deployment.stop();
    if (problems.length > 0) console.error(problems.join('\n'));
  }
  return {
    options,
    accounts: ACCOUNTS,
    ledgerLimit: LEDGER_LIMIT,
    operationRetentionMs,
    environment: describeEnvironment(),
    startedAt,
    finishedAt: new Date().toISOString(),
    requests,
    statuses,
    samples,
  };
}

const mib = (bytes: number | null) => (bytes === null ? '–' : (bytes / 1048576).toFixed(2));

/** A plot of each series scaled to its own maximum: a flat line reads as flat. */
function asciiPlot(samples: readonly SoakSample[]): string {
  const series: [string, (s: SoakSample) => number][] = [
    ['used_memory', (s) => s.usedMemory],
    ['keys', (s) => s.keys],
    ['index + removals', (s) => s.indexMembers + s.removalMembers],
    ['operation ids', (s) => s.operationIds],
    ['service RSS', (s) => s.serviceRss ?? 0],
  ];
  const blocks = ' ▁▂▃▄▅▆▇█';
  const lines = series.map(([name, value]) => {
    const values = samples.map(value);
    const max = Math.max(...values, 1);
    const bar = values
      .map((v) => blocks[Math.round((v / max) * (blocks.length - 1))] ?? ' ')
      .join('');
    return `${name.padEnd(18)} ${bar}  (max ${max.toLocaleString('en-US')})`;
  });
  return ['```text', ...lines, '```'].join('\n');
}

export function renderSoak(result: SoakResult): string {
  const { options, environment: env } = result;
  const out: string[] = [];
  out.push('### Soak: storage under churn');
  out.push(
    `\`npm run bench:soak -- --minutes ${options.minutes}\` (\`bench/soak.ts\`), ${result.startedAt.slice(0, 16).replace('T', ' ')} UTC: ` +
      `${options.rate} requests/s of mixed traffic (new payments, replays, cancellations, declines) from ${result.accounts} accounts ` +
      `against one service process (api + worker) built as \`npm run start:prod\` runs it, with ` +
      `PAYMENT_EXPIRY_MS=${options.expiryMs}, EXPIRED_RETENTION_MS=${options.retentionMs}, ` +
      `ACCOUNT_LEDGER_LIMIT=${result.ledgerLimit}, ACCOUNT_OPERATION_RETENTION_MS=${result.operationRetentionMs}. ` +
      `Machine: ${env.machine.cores} cores (${env.machine.cpuModel}), ${(env.machine.memoryBytes / 2 ** 30).toFixed(0)} GiB, ` +
      `Node ${env.versions.node}, Redis ${env.versions.redis}; shared with other work (CPU noise, which does not move memory).`,
  );
  out.push(
    `Requests: ${Object.entries(result.requests)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; answers: ${Object.entries(result.statuses)
      .map(([k, v]) => `${k} × ${v}`)
      .join(
        ', ',
      )}. A sample every ${options.sampleS} s; raw numbers in \`bench/results/soak.json\`.`,
  );
  out.push(
    [
      '| t (min) | used_memory (MiB) | keys | token keys | index members | removal schedule | outbox | operation ids | ledger entries | queue keys | service RSS (MiB) |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...result.samples.map(
        (s) =>
          `| ${(s.atS / 60).toFixed(1)} | ${mib(s.usedMemory)} | ${s.keys} | ${s.tokenKeys} | ${s.indexMembers} | ${s.removalMembers} | ${s.outboxMembers} | ${s.operationIds} | ${s.ledgerEntries} | ${s.queueKeys} | ${mib(s.serviceRss)} |`,
      ),
    ].join('\n'),
  );
  out.push(asciiPlot(result.samples));
  return out.join('\n\n');
}

/** Puts the soak section into the Notes of docs/benchmarks.md (kept when `npm run bench` rewrites the page). */
async function writeDoc(result: SoakResult): Promise<void> {
  const path = join(ROOT, 'docs', 'benchmarks.md');
  const doc = readFileSync(path, 'utf8');
  const section = `${SOAK_START}\n\n${renderSoak(result)}\n\n${SOAK_END}`;
  const start = doc.indexOf(SOAK_START);
  const end = doc.indexOf(SOAK_END);
  let next: string;
  if (start >= 0 && end > start) {
    next = doc.slice(0, start) + section + doc.slice(end + SOAK_END.length);
  } else {
    const notesEnd = doc.indexOf('<!-- notes:end -->');
    if (notesEnd < 0) throw new Error('docs/benchmarks.md has no Notes section');
    next = `${doc.slice(0, notesEnd)}\n${section}\n\n${doc.slice(notesEnd)}`;
  }
  const options = (await resolveConfig(path)) ?? {};
  writeFileSync(path, await format(next, { ...options, parser: 'markdown' }));
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  cleanUpOnSignals();
  buildService();
  const result = await soak(options);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const file = join(ROOT, 'bench', 'results', 'soak.json');
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: ${file}`);
  if (options.doc) {
    await writeDoc(result);
    console.log('report: docs/benchmarks.md (soak section)');
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (error: unknown) => {
    console.error(error);
    await cleanupAll();
    process.exitCode = 1;
  },
);
