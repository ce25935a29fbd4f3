/**
 * Limits on every amount the ledger accepts. Amounts and balances are whole tokens held as JavaScript
 * numbers, so every value must stay a safe integer; PostgreSQL stores balances as bigint.
 */
export const TOKEN_AMOUNT_MIN = 1;
export const TOKEN_AMOUNT_MAX = Number.MAX_SAFE_INTEGER;
export const BALANCE_MAX = Number.MAX_SAFE_INTEGER;
/** Text lengths are counted in characters: Unicode code points (textLength), never UTF-16 units. */
export const DESCRIPTION_LENGTH_MAX = 500;
/** An admin adjustment's reason: required, and as long as a description may be. */
export const REASON_LENGTH_MAX = 500;

/**
 * Characters that show nothing: white space (U+0085 and U+3000 too), controls, format characters
 * (U+200B, U+FEFF), the other default-ignorable ones (the Hangul fillers), and U+2800 BRAILLE
 * PATTERN BLANK, a symbol by category that is a favourite "invisible" character.
 */
const SHOWS_NOTHING = /^[\p{White_Space}\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\u2800]*$/u;

/**
 * Whether text would show a reader nothing: empty, or only the characters above (a lone combining
 * mark or a private-use character is not among them: fonts draw something for them). A reason
 * must not be blank (the HTTP validation and the ledger ask the same): JavaScript's `trim` leaves
 * U+0085, U+200B and U+3164, among others, which print as nothing in a history or an audit.
 */
export function isBlank(text: string): boolean {
  return SHOWS_NOTHING.test(text);
}

/**
 * The one way text is measured, by the HTTP validation and by the ledger alike: Unicode code points,
 * as PostgreSQL's `char_length` counts them. A character outside the basic plane (an emoji) is one,
 * though JavaScript's `length` says two; a combining mark or a variation selector is one of its own.
 */
export function textLength(text: string): number {
  let length = 0;
  for (let index = 0; index < text.length; index += 1) {
    const unit = text.charCodeAt(index);
    // A high surrogate followed by a low one is one code point: skip the low one.
    if (
      unit >= 0xd800 &&
      unit <= 0xdbff &&
      // Stryker disable next-line ConditionalExpression,EqualityOperator,ArithmeticOperator: equivalent, past the last unit charCodeAt gives NaN, which is no low surrogate.
      index + 1 < text.length
    ) {
      const next = text.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) index += 1;
    }
    length += 1;
  }
  return length;
}

export function isTokenAmount(value: number): boolean {
  return (
    Number.isSafeInteger(value) &&
    value >= TOKEN_AMOUNT_MIN &&
    // Stryker disable next-line ConditionalExpression: equivalent, the upper bound is the largest safe integer, which isSafeInteger already checks.
    value <= TOKEN_AMOUNT_MAX
  );
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

/** Holds active on one account at a time: a hold beyond it is refused (HOLD_LIMIT_REACHED). */
export const ACTIVE_HOLDS_MAX = 100;
/**
 * Ended holds an account remembers (the newest), so that the decider answers settling or releasing
 * one again with HOLD_NOT_ACTIVE and how it ended; an older one it answers HOLD_NOT_FOUND, and the
 * handlers read how it ended from the hold list (`holdWithoutActive`). Bounds the folded state.
 */
export const ENDED_HOLDS_REMEMBERED_MAX = 100;
/**
 * Voided grants an account remembers (the newest), so that the decider answers a second void with
 * LOT_NOT_ACTIVE itself; an older one it answers LOT_NOT_FOUND, as any lot with nothing left, and the
 * void's handler finds how it ended in the account's lot list. Bounds the folded state.
 */
export const VOIDED_GRANTS_REMEMBERED_MAX = 100;
/** Credit lots with tokens left on one account: a credit beyond it is refused (LOT_LIMIT_REACHED). */
export const LIVE_LOTS_MAX = 1000;
/** Draw-down order: lower priorities are spent first. */
export const LOT_PRIORITY_MIN = 0;
export const LOT_PRIORITY_MAX = 1_000_000;
/** The priority of paid credit (purchases), positive adjustments and the opening lot, unless a package says otherwise. */
export const LOT_PRIORITY_DEFAULT = 100;
/** The priority of an admin grant unless given: promotional credit is spent before paid credit. */
export const GRANT_PRIORITY_DEFAULT = 10;
/** The longest lifetime a package may give the tokens it credits, in days (100 years; TOKEN_PACKAGES is refused past it). */
export const PURCHASE_LIFETIME_DAYS_MAX = 36_500;
/** A hold's time to live, in seconds: the service's configured default and maximum stay within it. */
export const HOLD_TTL_SECONDS_MIN = 1;
export const HOLD_TTL_SECONDS_MAX = 30 * 24 * 60 * 60;

export function isLotPriority(value: number): boolean {
  return Number.isSafeInteger(value) && value >= LOT_PRIORITY_MIN && value <= LOT_PRIORITY_MAX;
}
