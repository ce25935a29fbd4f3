import { HttpStatus } from '@nestjs/common';
import { AUTH_ERROR_CODES } from '@app/auth';
import { DATABASE_ERROR_CODES, PAGING_ERROR_CODES } from '@app/database';
import { EVENT_SOURCING_ERROR_CODES } from '@app/event-sourcing';
import { CodedError, LEDGER_ERROR_CODES } from '@app/ledger';
import { OPERATIONS_ERROR_CODES } from '@app/operations';
import { PAYMENTS_ERROR_CODES } from '@app/payments';
import { PROJECTIONS_ERROR_CODES } from '@app/projections';
import { IDEMPOTENCY_ERROR_CODES } from './idempotency/idempotency.errors.js';
import { RATE_LIMIT_ERROR_CODES } from './rate-limits.js';
import { REQUEST_BODY_ERROR_CODES } from './request-body.js';
import { REQUEST_VALIDATION_ERROR_CODES } from './request-validation.error.js';

/** Every code an expected rejection can carry: each lib's closed list, composed here at the edge. */
export const ERROR_CODES = [
  ...LEDGER_ERROR_CODES,
  ...EVENT_SOURCING_ERROR_CODES,
  ...DATABASE_ERROR_CODES,
  ...PAGING_ERROR_CODES,
  ...OPERATIONS_ERROR_CODES,
  ...PAYMENTS_ERROR_CODES,
  ...PROJECTIONS_ERROR_CODES,
  ...AUTH_ERROR_CODES,
  ...REQUEST_VALIDATION_ERROR_CODES,
  ...REQUEST_BODY_ERROR_CODES,
  ...RATE_LIMIT_ERROR_CODES,
  ...IDEMPOTENCY_ERROR_CODES,
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** How the caller is told of a code: an RFC 9457 problem of type `urn:token-ledger:problem:<code>`. */
export type ProblemType = {
  readonly status: HttpStatus;
  readonly title: string;
  /**
   * The code (and so the type) the caller sees, when it is not the error's own: every refused
   * credential answers alike, and the reason, the error's code, goes to the log only.
   */
  readonly publicCode?: string;
  /** What the caller reads, when it is not the error's message (a message written for the log). */
  readonly detail?: (message: string) => string;
  /** Sent as `Retry-After` (seconds): the failure is passing, and the request is safe to send again then. */
  readonly retryAfterSeconds?: number;
  /**
   * A refused value: the request's field (a body property, a parameter, a header, or `body`) and the
   * rule it breaks, sent as the problem's `field` and `rule`. The error's details take precedence
   * where they name them: a code that more than one rule raises names the one broken.
   */
  readonly input?: { readonly field: string; readonly rule: string };
};

const UNAUTHENTICATED: ProblemType = {
  status: HttpStatus.UNAUTHORIZED,
  title: 'Authentication required',
  publicCode: 'UNAUTHENTICATED',
  detail: () => 'missing or invalid credentials: send Authorization: Bearer <JWT> or X-API-Key',
};

/**
 * The one mapping of codes to problems. A code added to any lib's list without an entry here does
 * not compile.
 */
export const PROBLEM_TYPES: Readonly<Record<ErrorCode, ProblemType>> = {
  AMOUNT_OUT_OF_RANGE: { status: HttpStatus.BAD_REQUEST, title: 'Amount out of range', input: { field: 'amount', rule: 'range' } },
  DESCRIPTION_TOO_LONG: { status: HttpStatus.BAD_REQUEST, title: 'Description too long', input: { field: 'description', rule: 'maxLength' } },
  INSUFFICIENT_BALANCE: { status: HttpStatus.CONFLICT, title: 'Insufficient token balance' },
  BALANCE_OUT_OF_RANGE: { status: HttpStatus.UNPROCESSABLE_ENTITY, title: 'Balance limit exceeded' },
  PAYMENT_ID_REUSED: { status: HttpStatus.CONFLICT, title: 'Payment id already credited with a different payload or to another account' },
  PAYMENT_NOT_FOUND: { status: HttpStatus.NOT_FOUND, title: 'Payment not found' },
  PAYMENT_EXPIRED: { status: HttpStatus.CONFLICT, title: 'Payment expired' },
  PAYMENT_DECLINED: { status: HttpStatus.PAYMENT_REQUIRED, title: 'Payment declined by the provider' },
  PAYMENT_NOT_CAPTURED: { status: HttpStatus.CONFLICT, title: 'Payment not captured' },
  REFUND_EXCEEDS_BALANCE: { status: HttpStatus.CONFLICT, title: 'Refund exceeds the token balance' },
  ADJUSTMENT_EXCEEDS_BALANCE: { status: HttpStatus.CONFLICT, title: 'Adjustment would take the balance below zero' },
  REASON_REQUIRED: { status: HttpStatus.BAD_REQUEST, title: 'Reason required', input: { field: 'reason', rule: 'isNotBlank' } },
  REASON_TOO_LONG: { status: HttpStatus.BAD_REQUEST, title: 'Reason too long', input: { field: 'reason', rule: 'maxLength' } },
  INSUFFICIENT_AVAILABLE_BALANCE: { status: HttpStatus.CONFLICT, title: 'Insufficient available balance (balance less held tokens and tokens reserved for refunds in progress)' },
  HOLD_NOT_FOUND: { status: HttpStatus.NOT_FOUND, title: 'No such hold on this account' },
  HOLD_NOT_ACTIVE: { status: HttpStatus.CONFLICT, title: 'The hold has ended' },
  HOLD_ID_REUSED: { status: HttpStatus.CONFLICT, title: 'Hold id already used with a different payload' },
  SETTLE_EXCEEDS_HOLD: { status: HttpStatus.CONFLICT, title: 'Settle amount exceeds the held amount' },
  HOLD_LIMIT_REACHED: { status: HttpStatus.CONFLICT, title: 'Too many active holds on this account' },
  HOLD_TTL_OUT_OF_RANGE: { status: HttpStatus.BAD_REQUEST, title: 'Hold time to live out of range', input: { field: 'expiresInSeconds', rule: 'range' } },
  LOT_LIMIT_REACHED: { status: HttpStatus.CONFLICT, title: 'Too many credit lots with tokens left on this account' },
  LOT_PRIORITY_OUT_OF_RANGE: { status: HttpStatus.BAD_REQUEST, title: 'Lot priority out of range', input: { field: 'priority', rule: 'range' } },
  LOT_EXPIRY_OUT_OF_RANGE: { status: HttpStatus.BAD_REQUEST, title: 'Lot expiry must be in the future', input: { field: 'expiresAt', rule: 'afterNow' } },
  LOT_NOT_FOUND: { status: HttpStatus.NOT_FOUND, title: 'The account has no credit lot with this id' },
  LOT_NOT_ACTIVE: { status: HttpStatus.CONFLICT, title: 'The lot is no longer active' },
  LOT_NOT_A_GRANT: { status: HttpStatus.CONFLICT, title: 'Only a grant can be voided' },
  LOT_HELD: { status: HttpStatus.CONFLICT, title: 'Part of the lot is held' },
  REFUND_EXCEEDS_LOT: { status: HttpStatus.CONFLICT, title: 'The purchase was partly spent or is held: its lot no longer holds all its tokens' },
  TOO_MANY_PENDING_PAYMENTS: { status: HttpStatus.CONFLICT, title: 'Too many open payments' },
  METADATA_INVALID: { status: HttpStatus.BAD_REQUEST, title: 'Metadata breaks a rule (named in rule)' },
  ACCOUNT_IN_SHORTFALL: { status: HttpStatus.CONFLICT, title: 'Lost payment disputes left the account owing tokens: nothing can be spent until a credit covers them' },
  PAYMENT_DISPUTED: { status: HttpStatus.CONFLICT, title: 'The payment is disputed: its money goes back through the dispute, not a refund' },

  CONCURRENCY_CONFLICT: { status: HttpStatus.CONFLICT, title: 'The account changed concurrently; retry the request' },
  // A lock held elsewhere or a database that stopped answering: with an Idempotency-Key the retry applies the work at most once.
  APPEND_DEADLINE_EXCEEDED: { status: HttpStatus.SERVICE_UNAVAILABLE, title: 'The write did not finish in time; retry the request', retryAfterSeconds: 1 },
  DATABASE_UNAVAILABLE: { status: HttpStatus.SERVICE_UNAVAILABLE, title: 'The database cannot be reached right now; retry shortly', retryAfterSeconds: 2 },
  INVALID_CURSOR: { status: HttpStatus.BAD_REQUEST, title: 'The cursor is not a position in this list' },
  ACCOUNT_NOT_FOUND: { status: HttpStatus.NOT_FOUND, title: 'The account has no events' },
  CHAIN_BROKEN: { status: HttpStatus.CONFLICT, title: 'The hash chain of the stream does not verify' },
  STREAM_NOT_REPLAYABLE: { status: HttpStatus.CONFLICT, title: 'The stream breaks the ledger invariants' },
  REVISION_OUT_OF_RANGE: { status: HttpStatus.BAD_REQUEST, title: 'The revision is past the end of the stream', input: { field: 'revision', rule: 'atMostLastRevision' } },
  ACCOUNT_CHECKS_BUSY: { status: HttpStatus.SERVICE_UNAVAILABLE, title: "Too many accounts' verifications and rebuilds are running; retry shortly", retryAfterSeconds: 5 },

  PACKAGE_NOT_FOUND: { status: HttpStatus.NOT_FOUND, title: 'Token package not found' },
  // The provider may or may not have acted: the request is safe to retry, and a retry records the outcome once.
  PROVIDER_RATE_LIMITED: {
    status: HttpStatus.SERVICE_UNAVAILABLE,
    title: 'The payment provider is limiting our requests; retry shortly',
    detail: (message) => `${message}; retry the request`,
    retryAfterSeconds: 2,
  },
  PROVIDER_UNAVAILABLE: { status: HttpStatus.BAD_GATEWAY, title: 'The payment provider did not answer; retry the request', detail: (message) => `${message}; retry the request` },
  // The provider refused the call as sent (a bad key, an amount or currency it does not take): a retry is refused the same way until the operator acts.
  PROVIDER_REJECTED: {
    status: HttpStatus.BAD_GATEWAY,
    title: 'The payment provider refused the request; retrying it unchanged will not help',
    detail: (message) => `${message}; the request will be refused the same way until the service's operator acts`,
  },

  // Not a failure to retry: this deployment takes no payments (PAYMENT_PROVIDER=none).
  PAYMENTS_DISABLED: { status: HttpStatus.NOT_IMPLEMENTED, title: 'This service takes no payments' },
  // Nothing recorded: the buyer confirms the PaymentIntent with Stripe.js first, then the capture is retried.
  PAYMENT_NOT_AUTHORIZED: { status: HttpStatus.CONFLICT, title: 'The buyer has not authorised the payment yet' },
  // Nothing credited: the provider took money that is not the payment's price (less than its order's amount, an operator's
  // partial capture; or an order changed at the provider to another amount or currency); an operator decides.
  PAYMENT_CAPTURED_IN_PART: { status: HttpStatus.CONFLICT, title: "The payment provider captured an amount other than the payment's price" },
  // Nothing refunded: the provider's refund failed or was canceled (the request ended: COMPLETED again, its tokens released;
  // REFUND_PENDING, reserved, while a dispute of the payment is open), or the provider refuses it while the charge is disputed
  // (REFUND_PENDING until the dispute ends it). Not kept under an Idempotency-Key: the same key asks again.
  REFUND_FAILED: { status: HttpStatus.CONFLICT, title: "The payment provider's refund failed" },
  WEBHOOK_SIGNATURE_INVALID: { status: HttpStatus.UNAUTHORIZED, title: 'Webhook signature missing, bad or too old' },
  PROVIDER_NOT_CONFIGURED: { status: HttpStatus.NOT_FOUND, title: 'This payment provider is not configured here' },

  UNKNOWN_PROJECTION: { status: HttpStatus.NOT_FOUND, title: 'No projection has this name' },
  REBUILD_IN_PROGRESS: { status: HttpStatus.CONFLICT, title: 'A rebuild of this projection is already running' },

  CREDENTIALS_MISSING: UNAUTHENTICATED,
  CREDENTIALS_AMBIGUOUS: UNAUTHENTICATED,
  TOKEN_MALFORMED: UNAUTHENTICATED,
  TOKEN_EXPIRED: UNAUTHENTICATED,
  TOKEN_NOT_YET_VALID: UNAUTHENTICATED,
  // The one refusal worth naming to the caller: the token is well formed but was signed with another
  // key, the operator's usual mistake (a development token minted with another DATA_DIR). It tells a
  // forger nothing they did not know; it tells an operator which secret to look at.
  TOKEN_SIGNATURE_INVALID: {
    ...UNAUTHENTICATED,
    detail: () => "the token's signature does not verify with this server's key: it was signed with another secret or key (for a development token: minted with another DATA_DIR)",
  },
  TOKEN_ALGORITHM_NOT_ALLOWED: UNAUTHENTICATED,
  TOKEN_KEY_NOT_FOUND: UNAUTHENTICATED,
  TOKEN_CLAIM_INVALID: UNAUTHENTICATED,
  // Said plainly: only a token with a valid signature gets this far, so its holder learns nothing but the rule.
  TOKEN_LIFETIME_TOO_LONG: { ...UNAUTHENTICATED, detail: (message) => message },
  API_KEY_INVALID: UNAUTHENTICATED,
  API_KEY_REVOKED: UNAUTHENTICATED,
  API_KEY_EXPIRED: UNAUTHENTICATED,
  // Not the caller's fault, and the JWKS failure it carries is for the log.
  AUTHENTICATION_UNAVAILABLE: { status: HttpStatus.SERVICE_UNAVAILABLE, title: 'Credentials cannot be checked right now', detail: () => 'credentials cannot be checked right now; retry later' },
  FORBIDDEN: { status: HttpStatus.FORBIDDEN, title: 'Not allowed' },
  API_KEY_NAME_TAKEN: { status: HttpStatus.CONFLICT, title: 'An API key not revoked already has this name' },
  API_KEY_SCOPE_INVALID: { status: HttpStatus.BAD_REQUEST, title: 'Scopes not usable by this API key role', input: { field: 'scopes', rule: 'scopesOfRole' } },
  API_KEY_REPLACES_INVALID: { status: HttpStatus.BAD_REQUEST, title: 'No API key of this role to replace', input: { field: 'replaces', rule: 'keyOfRole' } },
  API_KEY_EXPIRY_INVALID: { status: HttpStatus.BAD_REQUEST, title: 'API key expiry not in the future, or past its creating key', input: { field: 'expiresAt', rule: 'afterNow' } },
  API_KEY_NOT_FOUND: { status: HttpStatus.NOT_FOUND, title: 'No API key has this id' },

  VALIDATION_FAILED: { status: HttpStatus.BAD_REQUEST, title: 'The request is not valid' },
  BODY_TOO_DEEP: { status: HttpStatus.BAD_REQUEST, title: 'The body nests too deeply', input: { field: 'body', rule: 'maxDepth' } },
  BODY_NOT_UTF8: { status: HttpStatus.BAD_REQUEST, title: 'The body is not UTF-8', input: { field: 'body', rule: 'utf8' } },
  UNSUPPORTED_MEDIA_TYPE: { status: HttpStatus.UNSUPPORTED_MEDIA_TYPE, title: 'Unsupported media type' },
  RATE_LIMITED: { status: HttpStatus.TOO_MANY_REQUESTS, title: 'Too many requests; retry after the Retry-After seconds' },
  IDEMPOTENCY_KEY_INVALID: { status: HttpStatus.BAD_REQUEST, title: 'Idempotency-Key not valid', input: { field: 'Idempotency-Key', rule: 'pattern' } },
  IDEMPOTENCY_KEY_REUSED: { status: HttpStatus.UNPROCESSABLE_ENTITY, title: 'Idempotency-Key reused with a different request' },
  IDEMPOTENCY_KEY_IN_PROGRESS: { status: HttpStatus.CONFLICT, title: 'A request with this Idempotency-Key is in progress' },
};

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(PROBLEM_TYPES, code);
}

/** An expected rejection whose code the table maps; any other error is a 500 (or one of Nest's). */
export function isMappedError(error: unknown): error is CodedError<ErrorCode> {
  return error instanceof CodedError && typeof error.code === 'string' && isErrorCode(error.code);
}
