import { CodedError, isBlank, textLength } from '@app/ledger';
import type pg from 'pg';
import { callerName, type Actor } from './actor.js';
import { generateApiKey, hashApiKeySecret, hashesEqual, parseApiKey, API_KEY_ROLES, type ApiKeyRole } from './api-keys.js';
import { AccessDeniedError, AuthenticationError, type AuthErrorCode } from './authentication.errors.js';
import { isApiKeyScope, scopesOfRole, type ApiKeyScope } from './permissions.js';

export type ApiKeyRecord = {
  readonly id: string;
  readonly name: string;
  readonly role: ApiKeyRole;
  /** What the key may do within its role; a key made before scopes existed has its role's. */
  readonly scopes: readonly ApiKeyScope[];
  readonly createdAt: Date;
  /** After this the key is refused (401); null: it does not expire. */
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
  readonly lastUsedAt: Date | null;
  /** The key whose Idempotency-Keys this one uses: its own id, or the first of the keys it replaced (`replaces`). */
  readonly idempotencyScope: string;
  /** Who created it (`jwt:<sub>`, `api_key:<key id>`, `cli`); null for a key made before this was recorded. */
  readonly createdBy: string | null;
  /** Who revoked it; null while it is not revoked, or for a key revoked before this was recorded. */
  readonly revokedBy: string | null;
};


/** How they name the admin CLI, which works with the database's own credentials. */
export const CLI_CALLER = 'cli';

export type NewApiKey = {
  readonly name: string;
  readonly role: ApiKeyRole;
  /** Defaults to every scope of the role. Each must be one the role can use. */
  readonly scopes?: readonly ApiKeyScope[];
  readonly expiresAt?: Date | null;
  /**
   * The id of a key of the same role this one replaces (a rotation): both share Idempotency-Keys, so
   * a retry sent with the new key of a request first sent with the old one is answered, not done again.
   */
  readonly replaces?: string | null;
  /**
   * Who creates it, when that is an API key: a key can only hand on scopes it holds itself, so a key
   * allowed to manage keys cannot mint one that does more than it may.
   */
  readonly grantor?: Actor;
  /** Who creates it, when not an API caller (`grantor`): the admin CLI (`CLI_CALLER`). */
  readonly createdBy?: string;
};

export class ApiKeyNotFoundError extends CodedError<AuthErrorCode> {
  override readonly name = 'ApiKeyNotFoundError';

  constructor(readonly id: string) {
    super('API_KEY_NOT_FOUND', `no API key has the id ${id}`, { id });
  }
}

/** The scopes or expiry asked for a new key do not fit its role or the present (400 at the edge). */
export class ApiKeyRequestError extends CodedError<AuthErrorCode> {
  override readonly name = 'ApiKeyRequestError';
}

/** Active API keys have unique names, so an operator can tell them apart when revoking one. */
export class ApiKeyNameTakenError extends CodedError<AuthErrorCode> {
  override readonly name = 'ApiKeyNameTakenError';

  constructor(readonly keyName: string) {
    super('API_KEY_NAME_TAKEN', `an API key not revoked is already named ${JSON.stringify(keyName)} (an expired key keeps its name until it is revoked)`, { keyName });
  }
}

export type ApiKeyRepositoryOptions = {
  /** `last_used_at` is written at most once per this interval per key, not on every request. */
  readonly lastUsedResolutionSeconds: number;
};

type ApiKeyRow = {
  id: string;
  name: string;
  role: ApiKeyRole;
  scopes: string[] | null;
  hash: Buffer;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  idempotency_scope: string | null;
  created_by: string | null;
  revoked_by: string | null;
};

const NAME_LENGTH_MAX = 100;
// Compared against when the id is unknown, so an unknown id costs the same as a wrong secret.
const ABSENT_HASH = hashApiKeySecret('no such key');

/** Characters an API key's name may not hold: C0 and C1 controls, line and paragraph separators, bidirectional controls. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const API_KEY_NAME_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/**
 * Why `name` cannot name an API key, or undefined when it can: what an operator reads in lists and
 * logs, whoever creates the key, so never blank as a reason may not be (`isBlank`). Characters are counted as the request's rule and PostgreSQL count
 * them (an emoji is one), not UTF-16 units.
 */
export function apiKeyNameProblem(name: string): string | undefined {
  const length = textLength(name);
  if (length < 1 || length > NAME_LENGTH_MAX) return `an API key name is 1 to ${NAME_LENGTH_MAX} characters`;
  if (name !== name.trim() || API_KEY_NAME_FORBIDDEN.test(name)) return 'an API key name has no surrounding white space and no control, line-separator or direction characters';
  // Of invisible characters alone (U+200B, U+3164, ...), which `trim` leaves: a list would show it empty.
  if (isBlank(name)) return 'an API key name shows something: not only invisible characters';
  return undefined;
}

/** The `api_keys` table: create, authenticate, revoke, list. */
export class ApiKeyRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly options: ApiKeyRepositoryOptions = { lastUsedResolutionSeconds: 60 },
  ) {}

  /** Creates a key; the returned `key` is the only time its secret exists outside the caller. */
  async create(input: NewApiKey): Promise<{ readonly key: string; readonly record: ApiKeyRecord }> {
    // Checked here whoever creates the key (the HTTP route trims first, and the CLI refuses it as a usage error).
    const nameProblem = apiKeyNameProblem(input.name);
    if (nameProblem !== undefined) throw new RangeError(nameProblem);
    if (!API_KEY_ROLES.includes(input.role)) throw new RangeError(`an API key role is one of ${API_KEY_ROLES.join(', ')}`);
    const scopes = grantableScopes(input);
    const expiresAt = input.expiresAt ?? null;
    const generated = generateApiKey();
    // A key an API key creates expires by the time its creator does: a leaked short-lived key must not mint a lasting one.
    const grantorKeyId = input.grantor?.kind === 'api_key' ? input.grantor.subject : null;
    const replaces = input.replaces ?? null;
    if (replaces !== null && input.grantor?.kind === 'api_key') await this.assertMayReplace(input.grantor, replaces, input.role);
    try {
      const result = await this.pool.query<Omit<ApiKeyRow, 'id'> & { id: string | null; grantor_expires_at: Date | null; replaced_scope: string | null }>(
        // The expiry is compared with the database's clock, the one authenticate() judges it by. A
        // replaced key passes on the scope it has (its own id, or the one it took from the key it replaced).
        `WITH grantor AS (SELECT (SELECT expires_at FROM api_keys WHERE id = $7) AS expires_at),
              replaced AS (SELECT (SELECT coalesce(idempotency_scope, id) FROM api_keys WHERE id = $8 AND role = $3) AS scope),
              created AS (
                INSERT INTO api_keys (id, name, role, hash, scopes, expires_at, idempotency_scope, created_by)
                SELECT $1, $2, $3, $4, $5, $6, replaced.scope, $9 FROM grantor, replaced
                 WHERE ($6::timestamptz IS NULL OR $6::timestamptz > now())
                   AND (grantor.expires_at IS NULL OR $6::timestamptz <= grantor.expires_at)
                   AND ($8::text IS NULL OR replaced.scope IS NOT NULL)
                RETURNING *)
         SELECT created.*, grantor.expires_at AS grantor_expires_at, replaced.scope AS replaced_scope FROM grantor CROSS JOIN replaced LEFT JOIN created ON true`,
        [generated.id, input.name, input.role, generated.hash, scopes, expiresAt, grantorKeyId, replaces, input.grantor === undefined ? (input.createdBy ?? null) : callerName(input.grantor)],
      );
      const row = single(result.rows);
      if (row.id === null) {
        if (replaces !== null && row.replaced_scope === null) throw new ApiKeyRequestError('API_KEY_REPLACES_INVALID', `replaces ${replaces} names no ${input.role} API key`, { field: 'replaces' });
        const latest = row.grantor_expires_at;
        if (latest !== null && (expiresAt === null || expiresAt > latest)) {
          throw new ApiKeyRequestError('API_KEY_EXPIRY_INVALID', `expiresAt must be at or before ${latest.toISOString()}, when the API key creating this one expires`, {
            field: 'expiresAt',
            rule: 'notAfterCreatingKey',
            latest: latest.toISOString(),
          });
        }
        throw new ApiKeyRequestError('API_KEY_EXPIRY_INVALID', `expiresAt ${expiresAt?.toISOString()} is not in the future`, { field: 'expiresAt' });
      }
      return { key: generated.key, record: toRecord({ ...row, id: row.id }) };
    } catch (error) {
      if (isUniqueViolation(error, 'api_keys_active_name')) throw new ApiKeyNameTakenError(input.name);
      throw error;
    }
  }

  /**
   * A key that manages keys may make a replacement (which shares the Idempotency-Keys, and so the
   * stored answers, of every key of the replaced key's chain of rotations) only in a chain whose keys
   * can do no more than it: it must hold every scope of each. A key of another role, or none, is left
   * to the insert, which names `replaces`. Scopes and chains never change, so reading them first
   * decides as the insert would.
   */
  private async assertMayReplace(grantor: Actor, replaces: string, role: ApiKeyRole): Promise<void> {
    const chain = await this.pool.query<ApiKeyRow>(
      `SELECT * FROM api_keys WHERE role = $2
          AND coalesce(idempotency_scope, id) = (SELECT coalesce(idempotency_scope, id) FROM api_keys WHERE id = $1 AND role = $2)`,
      [replaces, role],
    );
    const held = grantor.scopes ?? [];
    const notHeld = [...new Set(chain.rows.flatMap((row) => scopesOf(row)))].filter((scope) => !held.includes(scope));
    if (notHeld.length > 0) throw new AccessDeniedError(`this API key cannot replace ${replaces}: its chain of keys holds ${notHeld.join(', ')}, which this key does not`, { missingScopes: notHeld });
  }

  /**
   * The actor a presented `X-API-Key` stands for, or AuthenticationError. The id selects the row;
   * the secret's hash is compared in constant time, and an unknown id still performs a comparison.
   */
  async authenticate(presented: string): Promise<Actor> {
    const parsed = parseApiKey(presented);
    if (parsed === undefined) throw new AuthenticationError('API_KEY_INVALID', 'the API key is malformed');
    // The row says whether its last use is older than the resolution, so a key used within it costs
    // this one statement: the UPDATE (which would change nothing) is not sent at all.
    const result = await this.pool.query<ApiKeyRow & { last_use_stale: boolean; expired: boolean }>(
      `SELECT *, (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2)) AS last_use_stale,
              (expires_at IS NOT NULL AND expires_at <= now()) AS expired
         FROM api_keys WHERE id = $1`,
      [parsed.id, this.options.lastUsedResolutionSeconds],
    );
    const row = result.rows[0];
    const matches = hashesEqual(hashApiKeySecret(parsed.secret), row?.hash ?? ABSENT_HASH);
    if (row === undefined || !matches) throw new AuthenticationError('API_KEY_INVALID', 'the API key is not valid');
    if (row.revoked_at !== null) throw new AuthenticationError('API_KEY_REVOKED', 'the API key has been revoked');
    if (row.expired) throw new AuthenticationError('API_KEY_EXPIRED', 'the API key has expired');
    if (row.last_use_stale) {
      await this.pool.query(
        `UPDATE api_keys SET last_used_at = now()
          WHERE id = $1 AND revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))`,
        [row.id, this.options.lastUsedResolutionSeconds],
      );
    }
    return { subject: row.id, role: row.role, kind: 'api_key', scopes: scopesOf(row), ...(row.idempotency_scope === null ? {} : { idempotencyScope: row.idempotency_scope }) };
  }

  /**
   * Revokes the key `id` on behalf of `by`: `revoked` for the one call that revoked it; its time and
   * revoker never move afterwards. An API key revoking (`revoker`) may revoke only a key whose every
   * scope it holds, as it may create or replace only such keys: a key that manages keys cannot take
   * down a wider one (an admin's, a production service's) and then take its name.
   */
  async revoke(id: string, by: string, revoker?: Actor): Promise<'revoked' | 'already_revoked' | 'not_found'> {
    if (revoker?.kind === 'api_key') {
      const target = (await this.pool.query<ApiKeyRow>('SELECT * FROM api_keys WHERE id = $1', [id])).rows[0];
      if (target === undefined) return 'not_found';
      const held = revoker.scopes ?? [];
      const notHeld = scopesOf(target).filter((scope) => !held.includes(scope));
      if (notHeld.length > 0) throw new AccessDeniedError(`this API key cannot revoke ${id}: that key holds ${notHeld.join(', ')}, which this key does not`, { missingScopes: notHeld });
    }
    const result = await this.pool.query<{ revoked_now: boolean }>(
      `WITH revoked AS (UPDATE api_keys SET revoked_at = now(), revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id)
       SELECT EXISTS (SELECT 1 FROM revoked) AS revoked_now FROM api_keys WHERE id = $1`,
      [id, by],
    );
    const row = result.rows[0];
    if (row === undefined) return 'not_found';
    return row.revoked_now ? 'revoked' : 'already_revoked';
  }

  async find(id: string): Promise<ApiKeyRecord | undefined> {
    const result = await this.pool.query<ApiKeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    const row = result.rows[0];
    return row === undefined ? undefined : toRecord(row);
  }

  /** Every key, newest first (there are few: one per backend or operator). */
  async list(): Promise<readonly ApiKeyRecord[]> {
    const result = await this.pool.query<ApiKeyRow>('SELECT * FROM api_keys ORDER BY created_at DESC, id');
    return result.rows.map(toRecord);
  }
}

function toRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    scopes: scopesOf(row),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    idempotencyScope: row.idempotency_scope ?? row.id,
    createdBy: row.created_by,
    revokedBy: row.revoked_by,
  };
}

/** A row's scopes: its own (names this version does not know grant nothing), or its role's for a key made before scopes. */
function scopesOf(row: ApiKeyRow): readonly ApiKeyScope[] {
  return row.scopes === null ? scopesOfRole(row.role) : row.scopes.filter(isApiKeyScope);
}

/**
 * The scopes a new key gets: those asked for (or all of its role's), each one its role can use and,
 * when an API key creates it, each one that key holds.
 */
function grantableScopes(input: NewApiKey): ApiKeyScope[] {
  const ofRole = scopesOfRole(input.role);
  const scopes = [...new Set(input.scopes ?? ofRole)];
  if (scopes.length === 0) throw new ApiKeyRequestError('API_KEY_SCOPE_INVALID', 'an API key needs at least one scope', { field: 'scopes', rule: 'arrayNotEmpty' });
  const outsideRole = scopes.filter((scope) => !ofRole.includes(scope));
  if (outsideRole.length > 0) {
    throw new ApiKeyRequestError('API_KEY_SCOPE_INVALID', `a ${input.role} key cannot use ${outsideRole.join(', ')}; its scopes are ${ofRole.join(', ')}`, {
      field: 'scopes',
      invalid: outsideRole,
      allowed: [...ofRole],
    });
  }
  const held = input.grantor?.scopes;
  const notHeld = held === undefined ? [] : scopes.filter((scope) => !held.includes(scope));
  if (notHeld.length > 0) throw new AccessDeniedError(`this API key cannot grant ${notHeld.join(', ')}: it does not hold them`, { missingScopes: notHeld });
  return scopes;
}

function single<T>(rows: readonly T[]): T {
  const [row] = rows;
  if (row === undefined || rows.length !== 1) throw new Error(`expected one row, got ${rows.length}`);
  return row;
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505' && (error as { constraint?: unknown }).constraint === constraint;
}
