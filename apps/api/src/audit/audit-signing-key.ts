import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { ValueProvider } from '@nestjs/common';
import type { AuthSettings } from '@app/auth';

/** The Ed25519 private key that signs audit bundles (a KeyObject). */
export const AUDIT_SIGNING_KEY = Symbol('AUDIT_SIGNING_KEY');

/**
 * The signing key of the resolved auth settings: AUDIT_SIGNING_KEY_FILE, or outside production the
 * development key created under DATA_DIR (resolveAuthSettings refuses production without the file).
 */
export function auditSigningKeyProvider(auth: AuthSettings): ValueProvider<KeyObject> {
  return { provide: AUDIT_SIGNING_KEY, useValue: createPrivateKey(auth.auditSigningKeyPem) };
}
