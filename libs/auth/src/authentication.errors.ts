import { CodedError, type ErrorDetails } from '@app/ledger';

/**
 * Why a credential was refused. Every code answers 401 at the edge with the same public body; the
 * code goes to the log, so an operator can tell an expired token from a forged one while a caller
 * learns nothing it did not already know.
 */
export const AUTHENTICATION_ERROR_CODES = [
  'CREDENTIALS_MISSING',
  'CREDENTIALS_AMBIGUOUS',
  'TOKEN_MALFORMED',
  'TOKEN_EXPIRED',
  'TOKEN_NOT_YET_VALID',
  'TOKEN_SIGNATURE_INVALID',
  'TOKEN_ALGORITHM_NOT_ALLOWED',
  'TOKEN_KEY_NOT_FOUND',
  'TOKEN_CLAIM_INVALID',
  'TOKEN_LIFETIME_TOO_LONG',
  'API_KEY_INVALID',
  'API_KEY_REVOKED',
  'API_KEY_EXPIRED',
] as const;

export type AuthenticationErrorCode = (typeof AUTHENTICATION_ERROR_CODES)[number];

/** Every expected rejection of the auth lib: refused credentials, and the rest. */
export const AUTH_ERROR_CODES = [
  ...AUTHENTICATION_ERROR_CODES,
  'AUTHENTICATION_UNAVAILABLE',
  'FORBIDDEN',
  'API_KEY_NAME_TAKEN',
  'API_KEY_SCOPE_INVALID',
  'API_KEY_EXPIRY_INVALID',
  'API_KEY_REPLACES_INVALID',
  'API_KEY_NOT_FOUND',
] as const;

export type AuthErrorCode = (typeof AUTH_ERROR_CODES)[number];

export class AuthenticationError extends CodedError<AuthenticationErrorCode> {
  override readonly name = 'AuthenticationError';

  constructor(code: AuthenticationErrorCode, message: string) {
    super(code, message, {});
  }
}

/**
 * The JSON Web Key Set could not be fetched or read: the service cannot judge the token, which is
 * not the caller's fault (503 at the edge, not 401).
 */
export class KeySetUnavailableError extends CodedError<AuthErrorCode> {
  override readonly name = 'KeySetUnavailableError';

  constructor(message: string, options?: ErrorOptions) {
    super('AUTHENTICATION_UNAVAILABLE', message, {}, options);
  }
}

/**
 * An authenticated caller asked for something its role's grants, or its API key's scopes, do not
 * allow (403 at the edge). A missing scope is named (`missingScope`): the key's holder can only fix
 * it by asking for a key with that scope, and learns nothing about any resource.
 */
export class AccessDeniedError extends CodedError<AuthErrorCode, ErrorDetails> {
  override readonly name = 'AccessDeniedError';

  constructor(message: string, details: ErrorDetails = {}) {
    super('FORBIDDEN', message, details);
  }
}
