import { ROLES, type Actor, type Role } from './actor.js';
import { ACTIONS, authorize, ENDPOINT_ACTIONS, type Action, type Endpoint } from './permissions.js';

const alice = '6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40';
const bob = '0c9d4f2e-7a1b-4c3d-8e5f-6a7b8c9d0e1f';

function actor(role: Role, subject = alice): Actor {
  return { subject, role, kind: 'jwt' };
}

// The role rules, written out independently of PERMISSIONS: 'own' = allowed on the caller's
// own resources only, 'any' = on anyone's, '-' = never.
const expected: Record<Action, Record<Role, 'own' | 'any' | '-'>> = {
  'account.balance.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.history.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.payments.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.usage.record': { user: '-', service: 'any', auditor: '-', admin: 'any' },
  'account.purchase.record': { user: '-', service: 'any', auditor: '-', admin: 'any' },
  'payment.create': { user: 'own', service: 'any', auditor: '-', admin: 'any' },
  'payment.capture': { user: 'own', service: 'any', auditor: '-', admin: 'any' },
  'payment.refund': { user: '-', service: '-', auditor: '-', admin: 'any' },
  'audit.read': { user: '-', service: '-', auditor: 'any', admin: 'any' },
  'projections.status.read': { user: '-', service: '-', auditor: 'any', admin: 'any' },
  'projections.rebuild': { user: '-', service: '-', auditor: '-', admin: 'any' },
  'account.adjust': { user: '-', service: '-', auditor: '-', admin: 'any' },
};

describe('authorize', () => {
  const cases = ACTIONS.flatMap((action) => ROLES.map((role) => [action, role, expected[action][role]] as const));

  it.each(cases)('%s by %s: %s', (action, role, rule) => {
    const own = authorize(actor(role), action, alice);
    const other = authorize(actor(role), action, bob);
    const ownerless = authorize(actor(role), action, undefined);
    switch (rule) {
      case 'any':
        expect([own, other, ownerless]).toEqual([{ allowed: true }, { allowed: true }, { allowed: true }]);
        break;
      case 'own':
        expect(own).toEqual({ allowed: true });
        expect(other).toEqual({ allowed: false, reason: 'NOT_OWNER' });
        expect(ownerless).toEqual({ allowed: false, reason: 'NOT_OWNER' });
        break;
      case '-':
        expect([own, other, ownerless]).toEqual(Array(3).fill({ allowed: false, reason: 'ROLE_NOT_ALLOWED' }));
        break;
    }
  });

  it('compares user ids without regard to case, whichever side is in upper case', () => {
    expect(authorize(actor('user', alice.toUpperCase()), 'account.balance.read', alice)).toEqual({ allowed: true });
    expect(authorize(actor('user', alice), 'account.balance.read', alice.toUpperCase())).toEqual({ allowed: true });
    expect(authorize(actor('user', alice.toUpperCase()), 'account.balance.read', bob.toUpperCase())).toEqual({ allowed: false, reason: 'NOT_OWNER' });
  });

  it('an auditor may read everything and write nothing', () => {
    const writes: Action[] = ['account.usage.record', 'account.purchase.record', 'payment.create', 'payment.capture', 'payment.refund', 'projections.rebuild', 'account.adjust'];
    for (const action of ACTIONS) {
      expect(authorize(actor('auditor'), action, bob).allowed).toBe(!writes.includes(action));
    }
  });
});

describe('ENDPOINT_ACTIONS', () => {
  it('gives every action at least one endpoint', () => {
    const used = new Set(ENDPOINT_ACTIONS.map((endpoint) => endpoint.action));
    expect(ACTIONS.filter((action) => !used.has(action))).toEqual([]);
  });

  it('names each endpoint once', () => {
    const keys = ENDPOINT_ACTIONS.map((endpoint) => `${endpoint.method} ${endpoint.path}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('gives every action a user may perform on its own resources an owner to check', () => {
    const ownerless = ENDPOINT_ACTIONS.filter((endpoint) => endpoint.owner === 'none' && expected[endpoint.action].user === 'own');
    expect(ownerless).toEqual([]);
  });

  it('includes the endpoints the issues name', () => {
    const keys = ENDPOINT_ACTIONS.map((endpoint) => `${endpoint.method} ${endpoint.path}`);
    expect(keys).toEqual(
      expect.arrayContaining([
        'GET /v1/accounts/{userId}/balance',
        'POST /v1/payments/{paymentId}/capture',
        'GET /v1/audit/accounts/{userId}/bundle',
        'POST /v1/admin/accounts/{userId}/adjustments',
        'POST /v1/admin/projections/{name}/rebuild',
      ]),
    );
  });
});

describe('ENDPOINT_ACTIONS: where each route finds the owner it checks', () => {
  // Written out independently of ENDPOINT_ACTIONS. The owner source is what stops a user from acting
  // on another user's account: a capture checked against a user id from the body, say, instead of the
  // payment's own user, would let anyone capture anyone's payment by naming themselves.
  const expectedEndpoints: readonly (readonly [string, Action, Endpoint['owner']])[] = [
    ['GET /v1/accounts/{userId}/balance', 'account.balance.read', 'path:userId'],
    ['GET /v1/accounts/{userId}/transactions', 'account.history.read', 'path:userId'],
    ['GET /v1/accounts/{userId}/payments', 'account.payments.read', 'path:userId'],
    ['GET /v1/payments/{paymentId}', 'account.payments.read', 'payment'],
    ['POST /v1/accounts/{userId}/usage', 'account.usage.record', 'path:userId'],
    ['POST /v1/accounts/{userId}/purchases', 'account.purchase.record', 'path:userId'],
    ['POST /v1/payments', 'payment.create', 'body:userId'],
    ['POST /v1/payments/{paymentId}/capture', 'payment.capture', 'payment'],
    ['POST /v1/payments/{paymentId}/refund', 'payment.refund', 'payment'],
    ['GET /v1/audit/accounts/{userId}/events', 'audit.read', 'path:userId'],
    ['GET /v1/audit/accounts/{userId}/balance', 'audit.read', 'path:userId'],
    ['GET /v1/audit/accounts/{userId}/verify', 'audit.read', 'path:userId'],
    ['GET /v1/audit/accounts/{userId}/bundle', 'audit.read', 'path:userId'],
    ['GET /v1/audit/signing-key', 'audit.read', 'none'],
    ['GET /v1/admin/projections', 'projections.status.read', 'none'],
    ['POST /v1/admin/projections/{name}/rebuild', 'projections.rebuild', 'none'],
    ['GET /v1/admin/projections/{name}/rebuilds/{id}', 'projections.status.read', 'none'],
    ['POST /v1/admin/accounts/{userId}/rebuild', 'projections.rebuild', 'path:userId'],
    ['POST /v1/admin/accounts/{userId}/adjustments', 'account.adjust', 'path:userId'],
  ];

  it('maps every route to its action and owner source, and no other route', () => {
    expect(ENDPOINT_ACTIONS.map((endpoint) => [`${endpoint.method} ${endpoint.path}`, endpoint.action, endpoint.owner])).toEqual(expectedEndpoints);
  });
});
