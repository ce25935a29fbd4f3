import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from './actor.js';

/** `tlk_` + 24 hex characters (the public id) + `_` + 43 base64url characters (256 secret bits). */
export const API_KEY_PATTERN = /^tlk_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;
export const API_KEY_ROLES = ['service', 'auditor', 'admin'] as const satisfies readonly Role[];
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

export type GeneratedApiKey = {
  readonly id: string;
  /** The whole key, shown once to whoever creates it; only its hash is stored. */
  readonly key: string;
  readonly hash: Buffer;
};

export function generateApiKey(): GeneratedApiKey {
  const id = randomBytes(12).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, key: `tlk_${id}_${secret}`, hash: hashApiKeySecret(secret) };
}

export function parseApiKey(key: string): { readonly id: string; readonly secret: string } | undefined {
  const match = API_KEY_PATTERN.exec(key);
  if (match === null) return undefined;
  const [, id, secret] = match;
  return id === undefined || secret === undefined ? undefined : { id, secret };
}

/**
 * SHA-256 of the secret. Enough because the secret is 256 random bits: nobody can search that
 * space from a leaked hash, which is the only thing a slow hash (bcrypt, argon2) adds, and those
 * would spend tens of milliseconds of CPU on every request: a denial of service handed to anyone
 * who can send a header.
 */
export function hashApiKeySecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Compares two 32-byte hashes in constant time. */
export function hashesEqual(left: Buffer, right: Buffer): boolean {
  return left.length === right.length && timingSafeEqual(left, right);
}
