/**
 * Limits on every amount the ledger accepts. Amounts and balances are whole tokens held as JavaScript
 * numbers, so every value must stay a safe integer; PostgreSQL stores balances as bigint.
 */
export const TOKEN_AMOUNT_MIN = 1;
export const TOKEN_AMOUNT_MAX = Number.MAX_SAFE_INTEGER;
export const BALANCE_MAX = Number.MAX_SAFE_INTEGER;
export const DESCRIPTION_LENGTH_MAX = 500;
/** An admin adjustment's reason: required, and as long as a description may be. */
export const REASON_LENGTH_MAX = 500;

export function isTokenAmount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= TOKEN_AMOUNT_MIN && value <= TOKEN_AMOUNT_MAX;
}

/** An adjustment moves tokens either way: a token amount with a sign (never 0). */
export function isAdjustmentAmount(value: number): boolean {
  return isTokenAmount(Math.abs(value));
}

/** A price in minor units of its currency (cents): a positive safe integer. */
export function isMoneyAmount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 1;
}

/** ISO 4217 alphabetic code. */
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;
