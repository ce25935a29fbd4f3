import { ROLES, type Actor, type Role } from './actor.js';
import { ACTIONS, API_KEY_SCOPES, authorize, ENDPOINT_ACTIONS, isApiKeyScope, scopesOfRole, type Action, type ApiKeyScope, type Endpoint } from './permissions.js';

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
  'account.holds.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.holds.write': { user: '-', service: 'any', auditor: '-', admin: 'any' },
  'account.lots.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.grant': { user: '-', service: '-', auditor: '-', admin: 'any' },
  'api_keys.manage': { user: '-', service: '-', auditor: '-', admin: 'any' },
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
    const writes: Action[] = ['account.usage.record', 'account.purchase.record', 'payment.create', 'payment.capture', 'payment.refund', 'projections.rebuild', 'account.adjust', 'account.holds.write', 'account.grant', 'api_keys.manage'];
    for (const action of ACTIONS) {
      expect(authorize(actor('auditor'), action, bob).allowed).toBe(!writes.includes(action));
    }
  });
});

describe('API key scopes', () => {
  function key(role: Role, scopes: readonly ApiKeyScope[]): Actor {
    return { subject: 'a1b2c3d4e5f6a1b2c3d4e5f6', role, kind: 'api_key', scopes };
  }

  it('allows an action only with its scope, and names the missing one', () => {
    expect(authorize(key('service', ['purchases:write']), 'account.purchase.record', bob)).toEqual({ allowed: true });
    expect(authorize(key('service', ['purchases:write']), 'account.usage.record', bob)).toEqual({ allowed: false, reason: 'SCOPE_MISSING', scope: 'usage:write' });
    expect(authorize(key('service', ['purchases:write']), 'account.balance.read', bob)).toEqual({ allowed: false, reason: 'SCOPE_MISSING', scope: 'accounts:read' });
  });

  it('never widens the role: a scope the role cannot use grants nothing', () => {
    expect(authorize(key('auditor', ['usage:write']), 'account.usage.record', bob)).toEqual({ allowed: false, reason: 'ROLE_NOT_ALLOWED' });
  });

  it('gives each role the scopes of the actions it may perform', () => {
    expect(scopesOfRole('service')).toEqual(['accounts:read', 'usage:write', 'purchases:write', 'payments:write', 'holds:write']);
    expect(scopesOfRole('auditor')).toEqual(['accounts:read', 'audit:read', 'projections:read']);
    expect(scopesOfRole('admin')).toEqual(API_KEY_SCOPES);
  });

  it('a key with the scopes of its role may do exactly what its role may', () => {
    for (const role of ['service', 'auditor', 'admin'] as const) {
      for (const action of ACTIONS) expect(authorize(key(role, scopesOfRole(role)), action, bob)).toEqual(authorize(actor(role), action, bob));
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
    ['POST /v1/accounts/{userId}/holds', 'account.holds.write', 'path:userId'],
    ['POST /v1/accounts/{userId}/holds/{holdId}/settle', 'account.holds.write', 'path:userId'],
    ['POST /v1/accounts/{userId}/holds/{holdId}/release', 'account.holds.write', 'path:userId'],
    ['GET /v1/accounts/{userId}/holds', 'account.holds.read', 'path:userId'],
    ['GET /v1/accounts/{userId}/holds/{holdId}', 'account.holds.read', 'path:userId'],
    ['GET /v1/accounts/{userId}/lots', 'account.lots.read', 'path:userId'],
    ['POST /v1/admin/accounts/{userId}/grants', 'account.grant', 'path:userId'],
    ['POST /v1/admin/accounts/{userId}/grants/{lotId}/void', 'account.grant', 'path:userId'],
    ['GET /v1/admin/api-keys', 'api_keys.manage', 'none'],
    ['POST /v1/admin/api-keys', 'api_keys.manage', 'none'],
    ['DELETE /v1/admin/api-keys/{id}', 'api_keys.manage', 'none'],
  ];

  it('maps every route to its action and owner source, and no other route', () => {
    expect(ENDPOINT_ACTIONS.map((endpoint) => [`${endpoint.method} ${endpoint.path}`, endpoint.action, endpoint.owner])).toEqual(expectedEndpoints);
  });
});

describe('API key scopes read from storage or the command line', () => {
  it('keeps every scope of the list and drops anything else, so an unknown stored scope grants nothing', () => {
    expect(API_KEY_SCOPES.filter(isApiKeyScope)).toEqual([...API_KEY_SCOPES]);
    expect(['accounts:admin', 'ACCOUNTS:READ', '', 'accounts:read ', 42, null, undefined, ['accounts:read']].filter(isApiKeyScope)).toEqual([]);
  });
});
