import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type CryptoKey, type JSONWebKeySet, type JWSHeaderParameters, type FlattenedJWSInput, type JWTPayload } from 'jose';
import { isRole, type Actor, type Role } from './actor.js';
import { AuthenticationError, KeySetUnavailableError } from './authentication.errors.js';
import { AuthConfigError, readSettingFile } from './setting-file.js';
import { VerifiedTokenCache, type TokenValidity } from './verified-token-cache.js';

export const ASYMMETRIC_ALGORITHMS = ['RS256', 'ES256'] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

/** HS256 keys shorter than the hash (RFC 7518 section 3.2) are refused. */
export const HS256_SECRET_LENGTH_MIN = 32;
export const CLOCK_TOLERANCE_SECONDS_MAX = 300;
/** The longest lifetime AUTH_JWT_MAX_LIFETIME_SECONDS may allow: 30 days, as the CLI's `token` mints at most. */
export const JWT_LIFETIME_SECONDS_MAX = 30 * 24 * 3600;
/** The default longest lifetime (`exp - iat`) of an accepted token: 24 hours. */
export const JWT_LIFETIME_SECONDS_DEFAULT = 24 * 3600;

/** A key set at a URL (fetched and cached by jose), or in a file: `keySet` when the settings read it already, else read on creation. */
export type JwksSource = { readonly file: string; readonly keySet?: JSONWebKeySet } | { readonly url: string };

export type JwtVerifierOptions = {
  /** HS256 shared secret; enables HS256. */
  readonly hs256Secret?: string;
  /** Public keys for RS256/ES256; enables the algorithms in `asymmetricAlgorithms`. */
  readonly jwks?: JwksSource;
  /** Which asymmetric algorithms a JWKS key may be used with; defaults to RS256 and ES256. */
  readonly asymmetricAlgorithms?: readonly AsymmetricAlgorithm[];
  /** When set, `iss` must equal it. */
  readonly issuer?: string;
  /** When set, `aud` must contain it. */
  readonly audience?: string;
  readonly clockToleranceSeconds: number;
  /**
   * The longest lifetime a token may claim: `exp - iat`, or `exp - now` for a token without `iat`.
   * A stolen token is good until its `exp`, so a token minted for a century is refused, not trusted.
   */
  readonly lifetimeSecondsMax?: number;
  /** Dotted path of the claim holding the role or roles, e.g. `app_metadata.roles` or `role`. */
  readonly rolesClaim: string;
  /** Remote JWKS: how long one fetch may take. */
  readonly jwksTimeoutMs?: number;
};

type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey | Uint8Array> | CryptoKey | Uint8Array;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Verifies `Authorization: Bearer` JWTs with jose and turns their claims into an Actor. Only the
 * configured algorithms are accepted (never `none`); each algorithm family has its own key, so an
 * RS256 public key can never be used as an HS256 secret.
 */
export class JwtVerifier {
  private constructor(
    private readonly options: JwtVerifierOptions,
    private readonly algorithms: readonly string[],
    private readonly resolveKey: KeyResolver,
    private readonly verified: VerifiedTokenCache,
  ) {}

  static async create(options: JwtVerifierOptions): Promise<JwtVerifier> {
    if (options.hs256Secret === undefined && options.jwks === undefined) throw new Error('JwtVerifier needs an HS256 secret or a JWKS');
    if (options.hs256Secret !== undefined && options.hs256Secret.length < HS256_SECRET_LENGTH_MIN) {
      throw new Error(`the HS256 secret must be at least ${HS256_SECRET_LENGTH_MIN} characters`);
    }
    const lifetime = options.lifetimeSecondsMax ?? JWT_LIFETIME_SECONDS_DEFAULT;
    if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > JWT_LIFETIME_SECONDS_MAX) throw new Error(`lifetimeSecondsMax must be an integer from 1 to ${JWT_LIFETIME_SECONDS_MAX}`);
    if (!Number.isInteger(options.clockToleranceSeconds) || options.clockToleranceSeconds < 0 || options.clockToleranceSeconds > CLOCK_TOLERANCE_SECONDS_MAX) {
      throw new Error(`clockToleranceSeconds must be an integer from 0 to ${CLOCK_TOLERANCE_SECONDS_MAX}`);
    }
    const secret = options.hs256Secret === undefined ? undefined : await importHs256Secret(options.hs256Secret);
    const keySet = options.jwks === undefined ? undefined : await loadKeySet(options.jwks, options.jwksTimeoutMs ?? 5_000);
    const asymmetric = options.jwks === undefined ? [] : [...(options.asymmetricAlgorithms ?? ASYMMETRIC_ALGORITHMS)];
    const algorithms = [...(secret === undefined ? [] : ['HS256']), ...asymmetric];
    const resolveKey: KeyResolver = (header, token) => {
      // jose has already refused any alg outside `algorithms`, so HS256 implies a secret is configured.
      if (header.alg === 'HS256' && secret !== undefined) return secret;
      if (keySet === undefined) throw new AuthenticationError('TOKEN_ALGORITHM_NOT_ALLOWED', `algorithm ${String(header.alg)} is not accepted`);
      return keySet(header, token);
    };
    return new JwtVerifier(options, algorithms, resolveKey, new VerifiedTokenCache());
  }

  /** The algorithms a token may be signed with. */
  get acceptedAlgorithms(): readonly string[] {
    return this.algorithms;
  }

  /**
   * The actor a token stands for, or AuthenticationError. A token accepted before is answered from
   * the VerifiedTokenCache while its claims still accept it (a backend sends the same token for
   * minutes); jose verifies every other token.
   */
  async verify(token: string, currentDate: Date = new Date()): Promise<Actor> {
    const nowSeconds = Math.floor(currentDate.getTime() / 1_000);
    const remembered = this.verified.get(token, nowSeconds, performance.now());
    if (remembered !== undefined) return remembered;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.resolveKey, {
        algorithms: [...this.algorithms],
        issuer: this.options.issuer,
        audience: this.options.audience,
        clockTolerance: this.options.clockToleranceSeconds,
        requiredClaims: ['sub', 'exp'],
        currentDate,
      }));
    } catch (error) {
      throw this.translate(error);
    }
    assertLifetime(payload, nowSeconds, this.options.clockToleranceSeconds, this.options.lifetimeSecondsMax ?? JWT_LIFETIME_SECONDS_DEFAULT);
    const actor: Actor = { subject: subjectOf(payload), role: roleOf(payload, this.options.rolesClaim), kind: 'jwt' };
    this.verified.remember(token, actor, this.validityOf(payload), performance.now());
    return actor;
  }

  /** The window in which jose accepts these claims: it checked `exp` (required) and `nbf` are numbers. */
  private validityOf(payload: JWTPayload): TokenValidity {
    const tolerance = this.options.clockToleranceSeconds;
    if (typeof payload.exp !== 'number') throw new Error('jose accepted a token without a numeric exp');
    return { validFromSeconds: (payload.nbf ?? Number.NEGATIVE_INFINITY) - tolerance, validUntilSeconds: payload.exp + tolerance };
  }

  private translate(error: unknown): Error {
    if (error instanceof AuthenticationError || error instanceof KeySetUnavailableError) return error;
    if (error instanceof errors.JWTExpired) return new AuthenticationError('TOKEN_EXPIRED', 'the token has expired');
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf' || (error.claim === 'iat' && error.reason === 'check_failed')) return new AuthenticationError('TOKEN_NOT_YET_VALID', 'the token is not valid yet');
      return new AuthenticationError('TOKEN_CLAIM_INVALID', `the token's ${error.claim} claim is invalid (${error.reason})`);
    }
    if (error instanceof errors.JWSSignatureVerificationFailed) return new AuthenticationError('TOKEN_SIGNATURE_INVALID', 'the token signature is invalid');
    if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return new AuthenticationError('TOKEN_ALGORITHM_NOT_ALLOWED', 'the token algorithm is not accepted');
    if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return new AuthenticationError('TOKEN_KEY_NOT_FOUND', 'no single configured key matches the token');
    if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return new AuthenticationError('TOKEN_MALFORMED', 'the token is malformed');
    return error instanceof Error ? error : new Error(String(error));
  }
}

/**
 * The HS256 secret as a WebCrypto key, imported once: handed raw bytes, jose imports them again on
 * every verification (about 6% of the CPU of a request).
 */
function importHs256Secret(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
}

async function loadKeySet(source: JwksSource, timeoutMs: number): Promise<KeyResolver> {
  if ('url' in source) {
    // jose caches the set, refetches it when a token names an unknown kid (at most every 30 s), and
    // gives up on a fetch after `timeoutDuration`.
    const remote = createRemoteJWKSet(new URL(source.url), { timeoutDuration: timeoutMs });
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        // No key for the token's kid is the token's problem; a set that times out, answers garbage or
        // cannot be reached says nothing about the token.
        if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error;
        throw new KeySetUnavailableError('the JSON Web Key Set could not be fetched', { cause: error });
      }
    };
  }
  return createLocalJWKSet(source.keySet ?? (await readKeySetFile(source.file)));
}

/**
 * The JSON Web Key Set in AUTH_JWKS_FILE, or an AuthConfigError naming the setting, the path and what
 * is wrong: not JSON, not a key set as jose takes one (a `keys` array of objects), or no key at all
 * (every token would be refused). Each key's own fields are judged by jose when a token names it.
 */
export async function readKeySetFile(file: string): Promise<JSONWebKeySet> {
  const text = await readSettingFile('AUTH_JWKS_FILE', file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AuthConfigError([`AUTH_JWKS_FILE=${file}: the file is not JSON`]);
  }
  try {
    createLocalJWKSet(parsed as JSONWebKeySet);
  } catch {
    throw new AuthConfigError([`AUTH_JWKS_FILE=${file}: the file is not a JSON Web Key Set (RFC 7517): an object with a "keys" array of keys`]);
  }
  if ((parsed as JSONWebKeySet).keys.length === 0) throw new AuthConfigError([`AUTH_JWKS_FILE=${file}: the key set has no key, so every token would be refused`]);
  return parsed as JSONWebKeySet;
}

/**
 * Refuses a token whose claimed lifetime is longer than allowed. Checked after the signature, so
 * only the holder of a genuinely signed token learns the limit from the answer. The lifetime runs
 * from `iat` (at the latest now plus the clock tolerance an issuer's clock may be ahead by), or from
 * now without `iat`: jose checks `iat` only against a maximum age, so a token issued "in the future"
 * (iat = exp - 60, exp ten years on) would otherwise pass as a one-minute token.
 */
function assertLifetime(payload: JWTPayload, nowSeconds: number, toleranceSeconds: number, lifetimeSecondsMax: number): void {
  if (typeof payload.exp !== 'number') throw new AuthenticationError('TOKEN_CLAIM_INVALID', 'the token has no numeric exp');
  const latestIssue = nowSeconds + toleranceSeconds;
  const issuedAt = typeof payload.iat === 'number' ? Math.min(payload.iat, latestIssue) : nowSeconds;
  const lifetimeSeconds = payload.exp - issuedAt;
  if (lifetimeSeconds > lifetimeSecondsMax) {
    const measured = typeof payload.iat !== 'number' ? 'exp - now' : payload.iat <= latestIssue ? 'exp - iat' : 'exp - now, plus the clock tolerance';
    throw new AuthenticationError('TOKEN_LIFETIME_TOO_LONG', `the token's lifetime (${measured}) is ${lifetimeSeconds} seconds; at most ${lifetimeSecondsMax} are accepted`);
  }
}

function subjectOf(payload: JWTPayload): string {
  if (typeof payload.sub !== 'string' || !UUID.test(payload.sub)) throw new AuthenticationError('TOKEN_CLAIM_INVALID', 'the token subject must be a UUID');
  return payload.sub.toLowerCase();
}

/**
 * The role named at `rolesClaim`: a string or an array of strings, of which values that are not one
 * of our roles are ignored (identity providers put their own there, e.g. Supabase's
 * `authenticated`). None of ours means `user`, the least privilege; more than one is refused, since
 * an actor has exactly one role and picking one would be a guess.
 */
export function roleOf(payload: JWTPayload, rolesClaim: string): Role {
  let value: unknown = payload;
  for (const segment of rolesClaim.split('.')) {
    value = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[segment] : undefined;
  }
  const values: unknown[] = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  if (values.some((entry) => typeof entry !== 'string')) throw new AuthenticationError('TOKEN_CLAIM_INVALID', `the ${rolesClaim} claim must be a string or an array of strings`);
  const roles = [...new Set(values.filter(isRole))];
  if (roles.length > 1) throw new AuthenticationError('TOKEN_CLAIM_INVALID', `the ${rolesClaim} claim names more than one role`);
  return roles[0] ?? 'user';
}
