/** Injection token of the resolved AuthSettings (verifier options and the bundle signing key). */
export const AUTH_SETTINGS = Symbol('AUTH_SETTINGS');
