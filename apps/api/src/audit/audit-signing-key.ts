import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { FactoryProvider } from '@nestjs/common';
import { loadAuthConfig, resolveAuthSettings } from '@app/auth';
import type { AppConfig } from '../config/app.config.js';

/** The Ed25519 private key that signs audit bundles (a KeyObject). */
export const AUDIT_SIGNING_KEY = Symbol('AUDIT_SIGNING_KEY');

/**
 * Where the signing key comes from, in one place: the auth settings (a configured key file, or the
 * development key created under DATA_DIR). The auth wiring replaces this provider with its own.
 */
export function auditSigningKeyProvider(config: AppConfig): FactoryProvider<KeyObject> {
  return {
    provide: AUDIT_SIGNING_KEY,
    useFactory: async () => createPrivateKey((await resolveAuthSettings(loadAuthConfig({ NODE_ENV: config.NODE_ENV, DATA_DIR: config.DATA_DIR }))).auditSigningKeyPem),
  };
}
