/**
 * New payments: every request a fresh Idempotency-Key, so each one locks,
 * charges, persists and schedules an expiry. Spread over many accounts, or
 * all on one account (the ledger's hot spot).
 */
import { failOnViolations, finish, type BenchContext } from '../bench-context.ts';
import type { Appendfsync } from '../bench-redis.ts';
import { startDeployment } from '../deployment.ts';
import { countOf, warmUpThenMeasure } from '../http-load.ts';
import { auditAccounts, auditOutbox, InvariantReport } from '../invariants.ts';
import { summarizeRun, type LoadRun } from '../load-run.ts';
import { accountIds, payment, tokenPrefix } from '../requests.ts';

export interface NewPaymentsOptions {
  readonly appendfsync: Appendfsync;
  readonly processes: number;
  /** Accounts the payments are spread over (1: all on one account). */
  readonly accounts: number;
}

export async function runNewPayments(
  context: BenchContext,
  options: NewPaymentsOptions,
): Promise<LoadRun> {
  const { settings } = context;
  const oneAccount = options.accounts === 1;
  const scenario = oneAccount ? 'one-account' : 'new-payments';
  const id = `${scenario}/${options.appendfsync}/${options.processes}-process`;
  context.log(`${id}: starting`);
  const deployment = await startDeployment({
    appendfsync: options.appendfsync,
    apiProcesses: options.processes,
  });
  try {
    const accounts = accountIds(oneAccount ? 'hot-account' : 'account', options.accounts);
    const prefix = tokenPrefix('new');
    let sent = 0;
    const next = () => {
      const i = sent++;
      return payment(`${prefix}-${i}`, accounts[i % accounts.length] ?? 'account');
    };
    const { warmup, load } = await warmUpThenMeasure(deployment, settings, next);

    const invariants = new InvariantReport();
    await auditOutbox(deployment, invariants);
    const money = await auditAccounts(deployment, accounts, invariants);
    invariants.check('one withdrawal per 201 Created (more only for requests that got no answer)');
    const created = countOf(warmup, 201) + countOf(load, 201);
    const unanswered = sent - warmup.responses - load.responses;
    if (money.withdrawals < created || money.withdrawals > created + unanswered) {
      invariants.violation(
        `${money.withdrawals} withdrawals for ${created} payments answered 201 (${unanswered} unanswered)`,
      );
    }
    if (money.deposits !== 0) invariants.violation(`${money.deposits} deposits, expected none`);

    const run = summarizeRun({
      id,
      scenario,
      title: oneAccount ? 'All payments on one account' : 'New payments, distinct tokens',
      workload: `POST /payments, a new Idempotency-Key per request, ${
        oneAccount ? 'all on one account' : `spread over ${options.accounts} accounts`
      }`,
      deployment: deployment.description,
      connections: settings.connections,
      load,
      expectedStatuses: [201],
      invariants,
    });
    failOnViolations(context, id, run.invariants);
    return run;
  } finally {
    await finish(context, id, deployment);
  }
}
