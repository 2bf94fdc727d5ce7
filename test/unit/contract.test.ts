/**
 * The contract check itself (test/support/contract.ts) bites: a status, a
 * field or a header the OpenAPI document does not declare is refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  assertMatchesContract,
  ContractError,
  takeViolations,
  type ContractReply,
} from '../support/contract.ts';

const view = {
  token: 't1',
  status: 'processed',
  payment: { accountId: 'a', amountCents: 100, currency: 'USD', capture: 'automatic' },
  capturedCents: 100,
  refundedCents: 0,
  refunds: [],
  lastDecline: null,
  createdAt: '2026-11-25T15:09:23.811Z',
  updatedAt: '2026-11-25T15:09:23.834Z',
  chargedAt: '2026-11-25T15:09:23.815Z',
  authorizedAt: null,
  captureBy: null,
  capturedAt: '2026-11-25T15:09:23.815Z',
  cancelledAt: null,
  cancellationReason: null,
  refundedAt: null,
  expiredAt: null,
  expiresAt: '2026-11-26T15:09:23.815Z',
  removeAt: null,
  history: [{ at: '2026-11-25T15:09:23.811Z', event: 'CREATED', state: 'pending' }],
};

function reply(over: Partial<ContractReply> & { headers?: Record<string, string> }): ContractReply {
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'x-request-id': 'abc-1',
    ...over.headers,
  };
  return {
    method: 'GET',
    path: '/payments/t1',
    status: 200,
    body: view,
    header: (name) => headers[name.toLowerCase()],
    ...over,
  };
}

// These violations are the point of the tests: the per-test check must not see them.
afterEach(() => {
  takeViolations();
});

describe('the contract check', () => {
  it('accepts a documented response', () => {
    expect(() => {
      assertMatchesContract(reply({}));
    }).not.toThrow();
  });

  it('refuses a status the document does not declare for the route', () => {
    expect(() => {
      assertMatchesContract(reply({ status: 418 }));
    }).toThrow(/answered 418, a status the OpenAPI document does not declare/);
    expect(() => {
      assertMatchesContract(
        reply({ status: 402, body: { error: { code: 'payment_declined', message: 'x' } } }),
      );
    }).toThrow(ContractError);
  });

  it('refuses a field the document does not declare', () => {
    expect(() => {
      assertMatchesContract(reply({ body: { ...view, internalNote: 'x' } }));
    }).toThrow(/must NOT have additional properties/);
  });

  it('refuses an error code its status does not have, and a response without X-Request-Id', () => {
    expect(() => {
      assertMatchesContract(
        reply({ status: 404, body: { error: { code: 'token_busy', message: 'x' } } }),
      );
    }).toThrow(/must be equal to one of the allowed values/);
    expect(() => {
      assertMatchesContract(reply({ headers: { 'x-request-id': '' } }));
    }).toThrow(/X-Request-Id/);
  });

  it('takes a 404 on a path no route serves, and nothing else there', () => {
    expect(() => {
      assertMatchesContract(
        reply({ path: '/nope', status: 404, body: { error: { code: 'not_found', message: 'x' } } }),
      );
    }).not.toThrow();
    expect(() => {
      assertMatchesContract(reply({ path: '/nope', status: 200 }));
    }).toThrow(/no documented operation serves it/);
  });
});
