/**
 * Why a credential was refused. Every code answers 401 at the edge with the same public body; the
 * code goes to the log, so an operator can tell an expired token from a forged one while a caller
 * learns nothing it did not already know.
 */
export type AuthenticationErrorCode =
  | 'CREDENTIALS_MISSING'
  | 'CREDENTIALS_AMBIGUOUS'
  | 'TOKEN_MALFORMED'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_NOT_YET_VALID'
  | 'TOKEN_SIGNATURE_INVALID'
  | 'TOKEN_ALGORITHM_NOT_ALLOWED'
  | 'TOKEN_KEY_NOT_FOUND'
  | 'TOKEN_CLAIM_INVALID'
  | 'API_KEY_INVALID'
  | 'API_KEY_REVOKED';

export class AuthenticationError extends Error {
  override readonly name = 'AuthenticationError';

  constructor(
    readonly code: AuthenticationErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The JSON Web Key Set could not be fetched or read: the service cannot judge the token, which is
 * not the caller's fault (503 at the edge, not 401).
 */
export class KeySetUnavailableError extends Error {
  override readonly name = 'KeySetUnavailableError';
}
