import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Role } from './actor.js';
import { HS256_SECRET_LENGTH_MIN } from './jwt-verifier.js';

export const TOKEN_TTL_SECONDS_MAX = 30 * 24 * 3600;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

export type MintTokenOptions = {
  readonly role: Role;
  /** The user id (a UUID) the token speaks for. */
  readonly sub: string;
  /** Seconds, or a duration such as `15m`, `12h`, `7d`; at most 30 days. */
  readonly ttl: number | string;
  /** The HS256 secret the service verifies with (the development secret by default). */
  readonly secret: string;
  /** Where the verifier looks for roles: the role is written there as a one-element array. */
  readonly rolesClaim: string;
  readonly issuer?: string;
  readonly audience?: string;
  readonly now?: Date;
};

/**
 * An HS256 token the service accepts, for local use and the `token` CLI command. Production uses
 * the identity provider's tokens; this helper only mints what the configured secret can verify.
 */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  if (options.secret.length < HS256_SECRET_LENGTH_MIN) throw new Error(`the HS256 secret must be at least ${HS256_SECRET_LENGTH_MIN} characters`);
  const ttlSeconds = parseTtl(options.ttl);
  const issuedAt = Math.floor((options.now ?? new Date()).getTime() / 1000);
  let jwt = new SignJWT(claimAt(options.rolesClaim, [options.role]))
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + ttlSeconds)
    .setJti(randomUUID());
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}

export function parseTtl(ttl: number | string): number {
  let seconds: number;
  if (typeof ttl === 'number') {
    seconds = ttl;
  } else {
    // A bare number is seconds, as the number form is.
    const match = /^(\d{1,7})([smhd]?)$/.exec(ttl);
    if (match === null) throw new Error(`ttl ${JSON.stringify(ttl)} must be a number of seconds or a duration like 15m, 12h, 7d`);
    seconds = Number(match[1]) * UNIT_SECONDS[(match[2] || 's') as keyof typeof UNIT_SECONDS];
  }
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > TOKEN_TTL_SECONDS_MAX) throw new Error(`ttl must be from 1 second to 30 days, got ${String(ttl)}`);
  return seconds;
}

function claimAt(path: string, value: unknown): Record<string, unknown> {
  const segments = path.split('.');
  let claims: unknown = value;
  for (const segment of segments.reverse()) claims = { [segment]: claims };
  return claims as Record<string, unknown>;
}
