/** The four roles of the service. A closed list: a role not named here is never granted. */
export const ROLES = ['user', 'service', 'auditor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * Who is calling, once authenticated. `subject` is the JWT `sub` (a user id, a UUID) or the API
 * key's id; it goes into the metadata of every event the request appends, with the role and kind.
 */
export type Actor = {
  readonly subject: string;
  readonly role: Role;
  readonly kind: 'jwt' | 'api_key';
  /**
   * An API key's scopes (permissions.ts: API_KEY_SCOPES), which narrow what its role allows.
   * Undefined for a JWT: its role decides alone.
   */
  readonly scopes?: readonly string[];
  /**
   * An API key's Idempotency-Keys are those of this key id when it replaced another (a rotation):
   * a retry sent with the new key is the old key's request. Undefined: its own (`subject`).
   */
  readonly idempotencyScope?: string;
};

/**
 * How the service names a caller wherever one is recorded or counted: `jwt:<sub>` or
 * `api_key:<key id>` (the request log line, `api_keys.created_by`/`revoked_by`, the per-credential
 * rate limit). Never a secret.
 */
export function callerName(actor: Pick<Actor, 'kind' | 'subject'>): string {
  return `${actor.kind}:${actor.subject}`;
}

/** The audit metadata of an actor: the fields an event's metadata records about who asked. */
export function actorMetadata(actor: Actor): { readonly actorSubject: string; readonly actorRole: Role; readonly actorKind: Actor['kind'] } {
  return { actorSubject: actor.subject, actorRole: actor.role, actorKind: actor.kind };
}
