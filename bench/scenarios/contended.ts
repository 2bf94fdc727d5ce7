/**
 * Contended pays and cancels: every request goes to one of a few hot tokens,
 * half of them payments and half cancellations, so requests for a token
 * queue behind its lock and payments race cancellations. A hot token is
 * replaced by a fresh one after a fixed number of requests, so the races of
 * a first payment against a first cancel happen all run long, not only at
 * the start. Afterwards every token and every ledger is audited.
 */
import { failOnViolations, finish, type BenchContext } from '../bench-context.ts';
import { startDeployment } from '../deployment.ts';
import { runLoad, type RequestSpec } from '../http-load.ts';
import { auditAccounts, auditOutbox, auditTokens, InvariantReport } from '../invariants.ts';
import { summarizeRun, type LoadRun } from '../load-run.ts';
import { accountIds, cancellation, payment, tokenPrefix } from '../requests.ts';

const ACCOUNTS = 8;

export async function runContended(context: BenchContext, processes: number): Promise<LoadRun> {
  const { settings } = context;
  const id = `contended/everysec/${processes}-process`;
  context.log(`${id}: starting`);
  const deployment = await startDeployment({ appendfsync: 'everysec', apiProcesses: processes });
  try {
    const accounts = accountIds('hot-account', ACCOUNTS);
    const prefix = tokenPrefix('hot');
    const uses = new Array<number>(settings.hotTokens).fill(0);
    const tokens = new Set<string>();
    const created = new Map<string, number>();
    let busy = 0;
    const next = (): RequestSpec => {
      const slot = Math.floor(Math.random() * settings.hotTokens);
      const use = uses[slot] ?? 0;
      uses[slot] = use + 1;
      const token = `${prefix}-${slot}-${Math.floor(use / settings.hotTokenRequests)}`;
      tokens.add(token);
      // One body per token: a replay must match the first payment.
      return Math.random() < 0.5
        ? payment(token, accounts[slot % ACCOUNTS] ?? 'hot-account', 100 + slot)
        : cancellation(token);
    };
    const onReply = (request: RequestSpec, status: number, body: string) => {
      if (status === 201) {
        const token = request.headers?.['idempotency-key'] ?? '';
        created.set(token, (created.get(token) ?? 0) + 1);
      } else if (status === 409 && body.includes('token_busy')) {
        busy++;
      }
    };
    await runLoad({
      urls: deployment.urls,
      connections: settings.connections,
      durationS: settings.warmupS,
      next,
      onReply,
    });
    busy = 0;
    const load = await runLoad({
      urls: deployment.urls,
      connections: settings.connections,
      durationS: settings.loadS,
      next,
      onReply,
      watch: deployment.watched(),
    });

    const invariants = new InvariantReport();
    await auditOutbox(deployment, invariants);
    const money = await auditAccounts(deployment, accounts, invariants);
    await auditTokens(deployment, tokens, money, invariants, created);
    const run = summarizeRun({
      id,
      scenario: 'contended',
      title: `Contended pays and cancels over ${settings.hotTokens} hot tokens`,
      workload:
        `POST /payments or POST /payments/{token}/cancel (even odds) on one of ` +
        `${settings.hotTokens} hot tokens at random; each hot token is replaced after ` +
        `${settings.hotTokenRequests} requests (${tokens.size} tokens in all)`,
      deployment: deployment.description,
      connections: settings.connections,
      load,
      // 201 charged, 200 replayed or cancelled/refunded, 409 paid after a cancel.
      expectedStatuses: [200, 201, 409],
      extraErrors: { '409 token_busy': busy },
      invariants,
      notes: [
        `${money.withdrawals} charges and ${money.deposits} refunds over ${tokens.size} tokens`,
      ],
    });
    failOnViolations(context, id, run.invariants);
    return run;
  } finally {
    await finish(context, id, deployment);
  }
}
