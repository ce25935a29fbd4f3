import type { Actor, Role } from './actor.js';

/**
 * Everything a caller can ask of the service, one action per kind of endpoint. Each endpoint names
 * exactly one action (ENDPOINT_ACTIONS); the table below says which roles may perform it.
 */
export const ACTIONS = [
  'account.balance.read',
  'account.history.read',
  'account.payments.read',
  'account.usage.record',
  'account.purchase.record',
  'payment.create',
  'payment.capture',
  'payment.refund',
  'audit.read',
  'projections.status.read',
  'projections.rebuild',
  'account.adjust',
  'account.holds.read',
  'account.holds.write',
  'account.lots.read',
  'account.grant',
  'api_keys.manage',
] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * What an API key may be limited to, beside its role: each action needs one scope (ACTION_SCOPES).
 * A key is allowed an action when its role allows it (PERMISSIONS) AND it carries the action's scope,
 * so a billing backend's key can record purchases without being able to record usage, and an
 * analytics key can read without writing. JWTs carry no scopes: their role decides alone.
 */
export const API_KEY_SCOPES = [
  'accounts:read',
  'usage:write',
  'purchases:write',
  'payments:write',
  'refunds:write',
  'adjustments:write',
  'holds:write',
  'grants:write',
  'audit:read',
  'projections:read',
  'projections:write',
  'api-keys:manage',
] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export const ACTION_SCOPES: { readonly [A in Action]: ApiKeyScope } = {
  'account.balance.read': 'accounts:read',
  'account.history.read': 'accounts:read',
  'account.payments.read': 'accounts:read',
  'account.usage.record': 'usage:write',
  'account.purchase.record': 'purchases:write',
  'payment.create': 'payments:write',
  'payment.capture': 'payments:write',
  'payment.refund': 'refunds:write',
  'audit.read': 'audit:read',
  'projections.status.read': 'projections:read',
  'projections.rebuild': 'projections:write',
  'account.adjust': 'adjustments:write',
  'account.holds.read': 'accounts:read',
  'account.holds.write': 'holds:write',
  'account.lots.read': 'accounts:read',
  'account.grant': 'grants:write',
  'api_keys.manage': 'api-keys:manage',
};

export function isApiKeyScope(value: unknown): value is ApiKeyScope {
  return typeof value === 'string' && (API_KEY_SCOPES as readonly string[]).includes(value);
}

/**
 * The scopes a role can use: those of every action the role may perform. A key created without
 * scopes gets these, and so does a key made before scopes existed (its `scopes` column is NULL).
 */
export function scopesOfRole(role: Role): readonly ApiKeyScope[] {
  return API_KEY_SCOPES.filter((scope) => ACTIONS.some((action) => ACTION_SCOPES[action] === scope && PERMISSIONS[action][role] !== undefined));
}

/**
 * `any`: on any user's resources. `own`: only when the resource belongs to the caller (its owner is
 * the caller's subject). A role absent from an action's row may not perform it.
 */
export type Scope = 'any' | 'own';

export const PERMISSIONS: { readonly [A in Action]: { readonly [R in Role]?: Scope } } = {
  'account.balance.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.history.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.payments.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  // A user may not credit or debit their own tokens directly: usage and purchases are recorded by
  // the backend that delivered the service or took the money.
  'account.usage.record': { service: 'any', admin: 'any' },
  'account.purchase.record': { service: 'any', admin: 'any' },
  'payment.create': { user: 'own', service: 'any', admin: 'any' },
  'payment.capture': { user: 'own', service: 'any', admin: 'any' },
  'payment.refund': { admin: 'any' },
  'audit.read': { auditor: 'any', admin: 'any' },
  'projections.status.read': { auditor: 'any', admin: 'any' },
  'projections.rebuild': { admin: 'any' },
  'account.adjust': { admin: 'any' },
  'account.holds.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  // Holds are placed and ended by the backend that does the work, as usage is recorded.
  'account.holds.write': { service: 'any', admin: 'any' },
  'account.lots.read': { user: 'own', service: 'any', auditor: 'any', admin: 'any' },
  'account.grant': { admin: 'any' },
  'api_keys.manage': { admin: 'any' },
};

export type AuthorizationDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'ROLE_NOT_ALLOWED' | 'NOT_OWNER' }
  | { readonly allowed: false; readonly reason: 'SCOPE_MISSING'; readonly scope: ApiKeyScope };

/**
 * Whether `actor` may perform `action` on a resource owned by `ownerId` (a user id). Pure. An `own`
 * grant needs the owner: when the route cannot name one (it is unknown or the resource does not
 * exist), `ownerId` is undefined and the answer is NOT_OWNER, so a user learns nothing about
 * resources that are not theirs.
 */
export function authorize(actor: Actor, action: Action, ownerId?: string): AuthorizationDecision {
  const scope = PERMISSIONS[action][actor.role];
  if (scope === undefined) return { allowed: false, reason: 'ROLE_NOT_ALLOWED' };
  const needed = ACTION_SCOPES[action];
  if (actor.scopes !== undefined && !actor.scopes.includes(needed)) return { allowed: false, reason: 'SCOPE_MISSING', scope: needed };
  if (scope === 'any') return { allowed: true };
  if (ownerId !== undefined && sameId(ownerId, actor.subject)) return { allowed: true };
  return { allowed: false, reason: 'NOT_OWNER' };
}

function sameId(left: string, right: string): boolean {
  // UUIDs are case-insensitive (RFC 9562); the API accepts either case.
  return left.toLowerCase() === right.toLowerCase();
}

export type Endpoint = {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly action: Action;
  /** Where the owning user id comes from, for `own` grants; `none` for endpoints with no owner. */
  readonly owner: 'path:userId' | 'body:userId' | 'payment' | 'none';
};

/**
 * Every endpoint of issues 2, 4, 5 and 6 and its action: the source of the README's role table and
 * of the test that walks it. `payment` owners are the payment's user id, read from the read model.
 */
export const ENDPOINT_ACTIONS: readonly Endpoint[] = [
  { method: 'GET', path: '/v1/accounts/{userId}/balance', action: 'account.balance.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/accounts/{userId}/transactions', action: 'account.history.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/accounts/{userId}/payments', action: 'account.payments.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/payments/{paymentId}', action: 'account.payments.read', owner: 'payment' },
  { method: 'POST', path: '/v1/accounts/{userId}/usage', action: 'account.usage.record', owner: 'path:userId' },
  { method: 'POST', path: '/v1/accounts/{userId}/purchases', action: 'account.purchase.record', owner: 'path:userId' },
  { method: 'POST', path: '/v1/payments', action: 'payment.create', owner: 'body:userId' },
  { method: 'POST', path: '/v1/payments/{paymentId}/capture', action: 'payment.capture', owner: 'payment' },
  { method: 'POST', path: '/v1/payments/{paymentId}/refund', action: 'payment.refund', owner: 'payment' },
  { method: 'GET', path: '/v1/audit/accounts/{userId}/events', action: 'audit.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/audit/accounts/{userId}/balance', action: 'audit.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/audit/accounts/{userId}/verify', action: 'audit.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/audit/accounts/{userId}/bundle', action: 'audit.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/audit/signing-key', action: 'audit.read', owner: 'none' },
  { method: 'GET', path: '/v1/admin/projections', action: 'projections.status.read', owner: 'none' },
  { method: 'POST', path: '/v1/admin/projections/{name}/rebuild', action: 'projections.rebuild', owner: 'none' },
  { method: 'GET', path: '/v1/admin/projections/{name}/rebuilds/{id}', action: 'projections.status.read', owner: 'none' },
  { method: 'POST', path: '/v1/admin/accounts/{userId}/rebuild', action: 'projections.rebuild', owner: 'path:userId' },
  { method: 'POST', path: '/v1/admin/accounts/{userId}/adjustments', action: 'account.adjust', owner: 'path:userId' },
  { method: 'POST', path: '/v1/accounts/{userId}/holds', action: 'account.holds.write', owner: 'path:userId' },
  { method: 'POST', path: '/v1/accounts/{userId}/holds/{holdId}/settle', action: 'account.holds.write', owner: 'path:userId' },
  { method: 'POST', path: '/v1/accounts/{userId}/holds/{holdId}/release', action: 'account.holds.write', owner: 'path:userId' },
  { method: 'GET', path: '/v1/accounts/{userId}/holds', action: 'account.holds.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/accounts/{userId}/holds/{holdId}', action: 'account.holds.read', owner: 'path:userId' },
  { method: 'GET', path: '/v1/accounts/{userId}/lots', action: 'account.lots.read', owner: 'path:userId' },
  { method: 'POST', path: '/v1/admin/accounts/{userId}/grants', action: 'account.grant', owner: 'path:userId' },
  { method: 'POST', path: '/v1/admin/accounts/{userId}/grants/{lotId}/void', action: 'account.grant', owner: 'path:userId' },
  { method: 'GET', path: '/v1/admin/api-keys', action: 'api_keys.manage', owner: 'none' },
  { method: 'POST', path: '/v1/admin/api-keys', action: 'api_keys.manage', owner: 'none' },
  { method: 'DELETE', path: '/v1/admin/api-keys/{id}', action: 'api_keys.manage', owner: 'none' },
];
