export const TOKEN_ACCOUNTS_OPTIONS = Symbol('TOKEN_ACCOUNTS_OPTIONS');

export type TokenAccountsOptions = {
  /** A hold's time to live when the request names none, and the most a request may name (seconds). */
  readonly holdTtlSecondsDefault: number;
  readonly holdTtlSecondsMax: number;
  /** Run the credit expiry job (holds and lots) in this process, every `expiryJobIntervalMs`. */
  readonly expiryJobEnabled: boolean;
  readonly expiryJobIntervalMs: number;
  /** The clock; tests inject one. */
  readonly now?: () => Date;
};

export const DEFAULT_TOKEN_ACCOUNTS_OPTIONS: TokenAccountsOptions = {
  holdTtlSecondsDefault: 15 * 60,
  holdTtlSecondsMax: 24 * 60 * 60,
  expiryJobEnabled: false,
  expiryJobIntervalMs: 60_000,
};

/** The time a command of the account is decided at: the injected clock's, or the system's. */
export function nowOf(options: Pick<TokenAccountsOptions, 'now'>): Date {
  return options.now === undefined ? new Date() : options.now();
}
