import { createPrivateKey, createPublicKey, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { plainToInstance, Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, validateSync } from 'class-validator';
import { AuthConfigError, readSettingFile } from './setting-file.js';
import { developmentAuditSigningKeyPath, developmentJwtSecretPath, loadOrCreateDevelopmentSecrets } from './development-secrets.js';
import { ASYMMETRIC_ALGORITHMS, CLOCK_TOLERANCE_SECONDS_MAX, HS256_SECRET_LENGTH_MIN, JWT_LIFETIME_SECONDS_DEFAULT, JWT_LIFETIME_SECONDS_MAX, readKeySetFile, type AsymmetricAlgorithm, type JwtVerifierOptions } from './jwt-verifier.js';

const toInteger = ({ value }: { value: unknown }) => (typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value);
const toList = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '') : value);

/**
 * The authentication and audit settings, read from the environment like AppConfig (same rules: a
 * bad value stops the process, naming the variable and the rule). The service (main.ts) and the CLI's
 * `token` command load it.
 */
export class AuthConfig {
  @IsIn(['development', 'test', 'production'])
  NODE_ENV: 'development' | 'test' | 'production' = 'development';

  @IsString()
  @MinLength(1)
  DATA_DIR = '.data';

  /** HS256 shared secret (e.g. a Supabase project's JWT secret). */
  @IsOptional()
  @IsString()
  @MinLength(HS256_SECRET_LENGTH_MIN)
  AUTH_JWT_SECRET?: string;

  /** The identity provider's JWKS endpoint, for RS256/ES256 tokens. */
  @IsOptional()
  @Matches(/^https?:\/\/\S+$/, { message: 'AUTH_JWKS_URL must be an http:// or https:// URL' })
  AUTH_JWKS_URL?: string;

  /** A JWKS JSON file, for RS256/ES256 tokens, when the keys are deployed with the service. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  AUTH_JWKS_FILE?: string;

  /** The algorithms JWKS keys may sign with. */
  @Transform(toList)
  @IsIn(ASYMMETRIC_ALGORITHMS, { each: true, message: `AUTH_JWT_ALGORITHMS must be a comma-separated list of ${ASYMMETRIC_ALGORITHMS.join(', ')}` })
  AUTH_JWT_ALGORITHMS: AsymmetricAlgorithm[] = [...ASYMMETRIC_ALGORITHMS];

  @IsOptional()
  @IsString()
  @MinLength(1)
  AUTH_JWT_ISSUER?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  AUTH_JWT_AUDIENCE?: string;

  @Transform(toInteger)
  @IsInt()
  @Min(0)
  @Max(CLOCK_TOLERANCE_SECONDS_MAX)
  AUTH_CLOCK_TOLERANCE_SECONDS = 30;

  /** The longest lifetime (`exp - iat`) of an accepted JWT; a longer one, or one without `exp`, is 401. */
  @Transform(toInteger)
  @IsInt()
  @Min(60)
  @Max(JWT_LIFETIME_SECONDS_MAX)
  AUTH_JWT_MAX_LIFETIME_SECONDS = JWT_LIFETIME_SECONDS_DEFAULT;

  /** Dotted path of the claim that carries the role(s). */
  @Matches(/^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/, { message: 'AUTH_ROLES_CLAIM must be a dotted claim path such as app_metadata.roles' })
  AUTH_ROLES_CLAIM = 'app_metadata.roles';

  /** Ed25519 private key (PKCS#8 PEM file) that signs audit bundles. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  AUDIT_SIGNING_KEY_FILE?: string;
}

const KEYS = Object.keys(new AuthConfig()).concat('AUTH_JWT_SECRET', 'AUTH_JWKS_URL', 'AUTH_JWKS_FILE', 'AUTH_JWT_ISSUER', 'AUTH_JWT_AUDIENCE', 'AUDIT_SIGNING_KEY_FILE');
/** Every variable loadAuthConfig reads. */
export const AUTH_CONFIG_VARIABLES: readonly string[] = KEYS;

/**
 * Reads and checks the settings; throws AuthConfigError listing every problem. Reads no file except,
 * in production, the development secrets under DATA_DIR, to refuse a configuration that reuses them.
 */
export function loadAuthConfig(environment: NodeJS.ProcessEnv): AuthConfig {
  const present = Object.fromEntries(KEYS.filter((key) => environment[key] !== undefined && environment[key] !== '').map((key) => [key, environment[key]]));
  const config = plainToInstance(AuthConfig, present);
  const problems = validateSync(config, { whitelist: true }).map(
    (error) => `${error.property}=${error.value === undefined ? '(unset)' : describe(error.property, error.value)}: ${Object.values(error.constraints ?? {}).join('; ')}`,
  );
  problems.push(...checkAuthConfig(config));
  if (config.NODE_ENV === 'production') problems.push(...developmentSecretsReused(config));
  if (problems.length > 0) throw new AuthConfigError(problems);
  return config;
}

/**
 * The rules between settings. Production must name its own secrets: it never falls back to the
 * development secrets, which sit in a file next to the data and sign tokens for any role.
 */
export function checkAuthConfig(config: AuthConfig): string[] {
  const problems: string[] = [];
  if (config.AUTH_JWKS_URL !== undefined && config.AUTH_JWKS_FILE !== undefined) problems.push('AUTH_JWKS_URL and AUTH_JWKS_FILE: set one, not both');
  if (config.AUTH_JWT_ALGORITHMS.length === 0) problems.push('AUTH_JWT_ALGORITHMS: name at least one algorithm');
  if (config.NODE_ENV === 'production') {
    if (config.AUTH_JWT_SECRET === undefined && config.AUTH_JWKS_URL === undefined && config.AUTH_JWKS_FILE === undefined) {
      problems.push('NODE_ENV=production needs AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWKS_FILE: development secrets are not used in production');
    }
    if (config.AUDIT_SIGNING_KEY_FILE === undefined) problems.push('NODE_ENV=production needs AUDIT_SIGNING_KEY_FILE (an Ed25519 private key) to sign audit bundles');
    if (config.AUTH_JWKS_URL?.startsWith('http://') === true) problems.push('AUTH_JWKS_URL must be https:// in production');
    // Without them a token issued for another application of the same identity provider is accepted.
    if (config.AUTH_JWT_ISSUER === undefined) problems.push('NODE_ENV=production needs AUTH_JWT_ISSUER: tokens of another issuer must be refused');
    if (config.AUTH_JWT_AUDIENCE === undefined) problems.push('NODE_ENV=production needs AUTH_JWT_AUDIENCE: tokens meant for another service must be refused');
  }
  return problems;
}

/**
 * Production settings that name a development secret: the JWT secret or the bundle-signing key that
 * a development run created under DATA_DIR (readable next to the data, and able to sign any role).
 */
function developmentSecretsReused(config: AuthConfig): string[] {
  const problems: string[] = [];
  const developmentJwtSecret = readIfPresent(developmentJwtSecretPath(config.DATA_DIR))?.trim();
  if (config.AUTH_JWT_SECRET !== undefined && developmentJwtSecret !== undefined && sameText(config.AUTH_JWT_SECRET, developmentJwtSecret)) {
    problems.push(`AUTH_JWT_SECRET=(hidden): it is the development secret kept in ${developmentJwtSecretPath(config.DATA_DIR)}; production needs its own`);
  }
  // By path, or as a key: a copy of the development key (or a link to it) elsewhere, however encoded, is the same key.
  const developmentKey = publicKeyDerOf(readIfPresent(developmentAuditSigningKeyPath(config.DATA_DIR)));
  const configuredKey = config.AUDIT_SIGNING_KEY_FILE === undefined ? undefined : publicKeyDerOf(readIfPresent(config.AUDIT_SIGNING_KEY_FILE));
  const sameKey = developmentKey !== undefined && configuredKey !== undefined && developmentKey.equals(configuredKey);
  if (config.AUDIT_SIGNING_KEY_FILE !== undefined && (sameKey || path.resolve(config.AUDIT_SIGNING_KEY_FILE) === path.resolve(developmentAuditSigningKeyPath(config.DATA_DIR)))) {
    problems.push(`AUDIT_SIGNING_KEY_FILE=${JSON.stringify(config.AUDIT_SIGNING_KEY_FILE)}: it is the development key under DATA_DIR; production needs its own`);
  }
  return problems;
}

/** The public half of a PEM key (its SPKI DER), or undefined for no text or one that is not a key (refused elsewhere, by the key's own check). */
function publicKeyDerOf(pem: string | undefined): Buffer | undefined {
  if (pem === undefined) return undefined;
  try {
    return createPublicKey(pem).export({ type: 'spki', format: 'der' });
  } catch {
    return undefined;
  }
}

function readIfPresent(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function sameText(left: string, right: string): boolean {
  const [a, b] = [Buffer.from(left), Buffer.from(right)];
  return a.length === b.length && timingSafeEqual(a, b);
}

export type AuthSettings = {
  readonly jwt: JwtVerifierOptions;
  readonly auditSigningKeyPem: string;
  /** `development`: the secrets were created under DATA_DIR because none were configured. */
  readonly secretsSource: 'configured' | 'development';
};

/**
 * What the wiring needs to build a JwtVerifier and sign bundles. Outside production, settings that
 * are not configured come from the development secrets (created once under DATA_DIR).
 */
export async function resolveAuthSettings(config: AuthConfig): Promise<AuthSettings> {
  const jwtConfigured = config.AUTH_JWT_SECRET !== undefined || config.AUTH_JWKS_URL !== undefined || config.AUTH_JWKS_FILE !== undefined;
  const needsDevelopment = !jwtConfigured || config.AUDIT_SIGNING_KEY_FILE === undefined;
  if (needsDevelopment && config.NODE_ENV === 'production') throw new AuthConfigError(checkAuthConfig(config));
  const development = needsDevelopment ? await loadOrCreateDevelopmentSecrets(config.DATA_DIR) : undefined;
  // A key set file is read now, with the other files, so a bad one is refused before anything starts.
  const jwks =
    config.AUTH_JWKS_URL !== undefined ? { url: config.AUTH_JWKS_URL } : config.AUTH_JWKS_FILE !== undefined ? { file: config.AUTH_JWKS_FILE, keySet: await readKeySetFile(config.AUTH_JWKS_FILE) } : undefined;
  const jwt: JwtVerifierOptions = {
    hs256Secret: config.AUTH_JWT_SECRET ?? (jwtConfigured ? undefined : development?.jwtSecret),
    jwks,
    asymmetricAlgorithms: config.AUTH_JWT_ALGORITHMS,
    issuer: config.AUTH_JWT_ISSUER,
    audience: config.AUTH_JWT_AUDIENCE,
    clockToleranceSeconds: config.AUTH_CLOCK_TOLERANCE_SECONDS,
    lifetimeSecondsMax: config.AUTH_JWT_MAX_LIFETIME_SECONDS,
    rolesClaim: config.AUTH_ROLES_CLAIM,
  };
  const auditSigningKeyPem = config.AUDIT_SIGNING_KEY_FILE !== undefined ? await readSettingFile('AUDIT_SIGNING_KEY_FILE', config.AUDIT_SIGNING_KEY_FILE) : development?.auditSigningKeyPem;
  if (auditSigningKeyPem === undefined) throw new Error('unreachable: without AUDIT_SIGNING_KEY_FILE the development secrets were loaded');
  if (!isEd25519PrivateKey(auditSigningKeyPem)) throw new AuthConfigError(['AUDIT_SIGNING_KEY_FILE must hold an Ed25519 private key in PEM (PKCS#8)']);
  return { jwt, auditSigningKeyPem, secretsSource: development === undefined ? 'configured' : 'development' };
}

function isEd25519PrivateKey(pem: string): boolean {
  try {
    return createPrivateKey(pem).asymmetricKeyType === 'ed25519';
  } catch {
    return false;
  }
}

/** Secrets are named in errors, never printed. */
function describe(property: string, value: unknown): string {
  return property === 'AUTH_JWT_SECRET' ? '(hidden)' : JSON.stringify(value);
}
