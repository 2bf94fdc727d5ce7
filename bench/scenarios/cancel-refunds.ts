/**
 * Cancels with refund: tokens already processed, each cancelled exactly once,
 * so every request locks, refunds and persists `refunded`.
 */
import { failOnViolations, finish, type BenchContext } from '../bench-context.ts';
import { startDeployment } from '../deployment.ts';
import { countOf, runLoad } from '../http-load.ts';
import { auditAccounts, auditOutbox, auditTokens, InvariantReport } from '../invariants.ts';
import { summarizeRun, type LoadRun } from '../load-run.ts';
import { accountIds, cancellation, payment, tokenPrefix } from '../requests.ts';

export async function runCancelRefunds(context: BenchContext): Promise<LoadRun> {
  const { settings } = context;
  const id = 'cancel-refunds/everysec/1-process';
  context.log(`${id}: starting`);
  const deployment = await startDeployment({ appendfsync: 'everysec', apiProcesses: 1 });
  try {
    const accounts = accountIds('account', 100);
    const prefix = tokenPrefix('refund');
    const count = settings.cancelTokens;
    const tokens = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
    let paid = 0;
    const preload = await runLoad({
      urls: deployment.urls,
      connections: settings.connections,
      amount: count,
      next: () => {
        const i = paid++;
        return payment(tokens[i % count] ?? '', accounts[i % accounts.length] ?? 'account');
      },
    });
    let cancelled = 0;
    const load = await runLoad({
      urls: deployment.urls,
      connections: settings.connections,
      amount: count,
      next: () => cancellation(tokens[cancelled++ % count] ?? ''),
      watch: deployment.watched(),
    });

    const invariants = new InvariantReport();
    await auditOutbox(deployment, invariants);
    const money = await auditAccounts(deployment, accounts, invariants);
    const statuses = await auditTokens(deployment, tokens, money, invariants);
    invariants.check('every token paid and then cancelled is refunded, exactly once');
    const refunded = [...statuses.values()].filter((s) => s === 'refunded').length;
    if (money.withdrawals !== countOf(preload, 201)) {
      invariants.violation(
        `${money.withdrawals} withdrawals for ${countOf(preload, 201)} tokens paid`,
      );
    }
    if (money.deposits !== refunded || refunded < countOf(load, 200)) {
      invariants.violation(
        `${money.deposits} deposits, ${refunded} tokens refunded, ${countOf(load, 200)} cancels answered 200`,
      );
    }
    const run = summarizeRun({
      id,
      scenario: 'cancel-refunds',
      title: 'Cancels with refund',
      workload: `POST /payments/{token}/cancel, once for each of ${count} processed tokens`,
      deployment: deployment.description,
      connections: settings.connections,
      load,
      expectedStatuses: [200],
      invariants,
    });
    failOnViolations(context, id, run.invariants);
    return run;
  } finally {
    await finish(context, id, deployment);
  }
}
