/**
 * Replays: tokens already processed, paid again with the same body. Each
 * answer is the stored result (200, Idempotent-Replayed) and nothing moves.
 */
import { failOnViolations, finish, type BenchContext } from '../bench-context.ts';
import { startDeployment } from '../deployment.ts';
import { countOf, runLoad, warmUpThenMeasure } from '../http-load.ts';
import { auditAccounts, auditOutbox, InvariantReport } from '../invariants.ts';
import { summarizeRun, type LoadRun } from '../load-run.ts';
import { accountIds, payment, tokenPrefix } from '../requests.ts';

export async function runReplays(context: BenchContext): Promise<LoadRun> {
  const { settings } = context;
  const id = 'replays/everysec/1-process';
  context.log(`${id}: starting`);
  const deployment = await startDeployment({ appendfsync: 'everysec', apiProcesses: 1 });
  try {
    const accounts = accountIds('account', 100);
    const prefix = tokenPrefix('replay');
    const pool = settings.replayTokens;
    const paymentOf = (i: number) =>
      payment(`${prefix}-${i % pool}`, accounts[i % accounts.length] ?? 'account');
    let created = 0;
    const preload = await runLoad({
      urls: deployment.urls,
      connections: settings.connections,
      amount: pool,
      next: () => paymentOf(created++),
    });
    let sent = 0;
    const next = () => paymentOf(sent++);
    const { load } = await warmUpThenMeasure(deployment, settings, next);

    const invariants = new InvariantReport();
    await auditOutbox(deployment, invariants);
    const money = await auditAccounts(deployment, accounts, invariants);
    invariants.check('replays move no money: one withdrawal per token paid before the run');
    if (money.withdrawals !== countOf(preload, 201) || money.deposits !== 0) {
      invariants.violation(
        `${money.withdrawals} withdrawals and ${money.deposits} deposits for ${countOf(preload, 201)} tokens paid`,
      );
    }
    const run = summarizeRun({
      id,
      scenario: 'replays',
      title: 'Replays of processed tokens',
      workload: `POST /payments again, same key and body, round-robin over ${pool} processed tokens`,
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
