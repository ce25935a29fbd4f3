import { Catch, HttpException, HttpStatus, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { AccountNotFoundError, ChainBrokenError, ConcurrencyConflictError, StreamNotReplayableError } from '@app/accounts';
import { PaymentProviderError, PaymentsError, type PaymentsErrorCode } from '@app/payments';
import { LedgerError, type LedgerErrorCode } from '@app/ledger';
import { RebuildInProgressError, UnknownProjectionError } from '@app/projections';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequestValidationError } from './request-validation.error.js';

export type ProblemDetails = {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly instance: string;
  readonly [extension: string]: unknown;
};

/** The HTTP status of each domain rejection, decided once, here. */
const LEDGER_STATUS: Record<LedgerErrorCode, number> = {
  AMOUNT_OUT_OF_RANGE: HttpStatus.BAD_REQUEST,
  DESCRIPTION_TOO_LONG: HttpStatus.BAD_REQUEST,
  INSUFFICIENT_BALANCE: HttpStatus.CONFLICT,
  BALANCE_OUT_OF_RANGE: HttpStatus.UNPROCESSABLE_ENTITY,
  PAYMENT_ID_REUSED: HttpStatus.CONFLICT,
  PAYMENT_NOT_FOUND: HttpStatus.NOT_FOUND,
  PAYMENT_EXPIRED: HttpStatus.CONFLICT,
  PAYMENT_DECLINED: HttpStatus.PAYMENT_REQUIRED,
  PAYMENT_NOT_CAPTURED: HttpStatus.CONFLICT,
  REFUND_EXCEEDS_BALANCE: HttpStatus.CONFLICT,
  ADJUSTMENT_EXCEEDS_BALANCE: HttpStatus.CONFLICT,
  REASON_REQUIRED: HttpStatus.BAD_REQUEST,
  REASON_TOO_LONG: HttpStatus.BAD_REQUEST,
};

const PAYMENTS_STATUS: Record<PaymentsErrorCode, number> = {
  PACKAGE_NOT_FOUND: HttpStatus.NOT_FOUND,
  PROVIDER_UNAVAILABLE: HttpStatus.BAD_GATEWAY,
};

const TITLES: Record<string, string> = {
  VALIDATION_FAILED: 'The request is not valid',
  INSUFFICIENT_BALANCE: 'Insufficient token balance',
  PAYMENT_ID_REUSED: 'Payment already credited with a different payload',
  BALANCE_OUT_OF_RANGE: 'Balance limit exceeded',
  AMOUNT_OUT_OF_RANGE: 'Amount out of range',
  DESCRIPTION_TOO_LONG: 'Description too long',
  CONCURRENCY_CONFLICT: 'The account changed concurrently; retry the request',
  PAYMENT_NOT_FOUND: 'Payment not found',
  PAYMENT_EXPIRED: 'Payment expired',
  PAYMENT_DECLINED: 'Payment declined by the provider',
  PAYMENT_NOT_CAPTURED: 'Payment not captured',
  REFUND_EXCEEDS_BALANCE: 'Refund exceeds the token balance',
  ADJUSTMENT_EXCEEDS_BALANCE: 'Adjustment would take the balance below zero',
  REASON_REQUIRED: 'Reason required',
  REASON_TOO_LONG: 'Reason too long',
  PACKAGE_NOT_FOUND: 'Token package not found',
  PROVIDER_UNAVAILABLE: 'The payment provider did not answer; retry the request',
  IDEMPOTENCY_KEY_INVALID: 'Idempotency-Key not valid',
  IDEMPOTENCY_KEY_REUSED: 'Idempotency-Key reused with a different request',
  IDEMPOTENCY_KEY_IN_PROGRESS: 'A request with this Idempotency-Key is in progress',
  INTERNAL_ERROR: 'Internal error',
  UNKNOWN_PROJECTION: 'No projection has this name',
  REBUILD_IN_PROGRESS: 'A rebuild of this projection is already running',
  UNAUTHENTICATED: 'Authentication required',
  FORBIDDEN: 'Not allowed',
  AUTHENTICATION_UNAVAILABLE: 'Credentials cannot be checked right now',
  ACCOUNT_NOT_FOUND: 'The account has no events',
  CHAIN_BROKEN: 'The hash chain of the stream does not verify',
  STREAM_NOT_REPLAYABLE: 'The stream breaks the ledger invariants',
};

/** Every error leaves as an RFC 9457 problem (application/problem+json) with a stable `code`. */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const problem = this.toProblem(exception, request.url);
    if (problem.status >= 500) this.logger.error(`${request.method} ${request.url} failed: ${describe(exception)}`, exception instanceof Error ? exception.stack : undefined);
    void reply.status(problem.status).header('content-type', 'application/problem+json; charset=utf-8').send(problem);
  }

  private toProblem(exception: unknown, instance: string): ProblemDetails {
    if (exception instanceof RequestValidationError) {
      return problem(HttpStatus.BAD_REQUEST, 'VALIDATION_FAILED', exception.message, instance, { errors: exception.violations });
    }
    if (exception instanceof LedgerError) {
      return problem(LEDGER_STATUS[exception.code], exception.code, exception.message, instance, { ...exception.details });
    }
    if (exception instanceof PaymentsError) {
      return problem(PAYMENTS_STATUS[exception.code], exception.code, exception.message, instance, { ...exception.details });
    }
    if (exception instanceof PaymentProviderError) {
      // The provider may or may not have acted: the request is safe to retry, and a retry records the outcome once.
      return problem(HttpStatus.BAD_GATEWAY, 'PROVIDER_UNAVAILABLE', `${exception.message}; retry the request`, instance, { providerError: exception.kind });
    }
    if (exception instanceof ConcurrencyConflictError) {
      return problem(HttpStatus.CONFLICT, 'CONCURRENCY_CONFLICT', exception.message, instance);
    }
    if (exception instanceof UnknownProjectionError) {
      return problem(HttpStatus.NOT_FOUND, 'UNKNOWN_PROJECTION', exception.message, instance, { projection: exception.projection });
    }
    if (exception instanceof RebuildInProgressError) {
      return problem(HttpStatus.CONFLICT, 'REBUILD_IN_PROGRESS', exception.message, instance, { projection: exception.projection, rebuildId: exception.rebuildId ?? null });
    }
    if (exception instanceof AccountNotFoundError) {
      return problem(HttpStatus.NOT_FOUND, 'ACCOUNT_NOT_FOUND', exception.message, instance, { userId: exception.userId });
    }
    if (exception instanceof ChainBrokenError) {
      return problem(HttpStatus.CONFLICT, 'CHAIN_BROKEN', exception.message, instance, { firstBadRevision: exception.firstBadRevision.toString(), reason: exception.reason });
    }
    if (exception instanceof StreamNotReplayableError) {
      return problem(HttpStatus.CONFLICT, 'STREAM_NOT_REPLAYABLE', exception.message, instance, { reason: exception.reason });
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      return problem(status, httpCode(status), exception.message, instance, extensions(exception.getResponse()));
    }
    if (isFastifyClientError(exception)) {
      return problem(exception.statusCode, exception.code ?? httpCode(exception.statusCode), exception.message, instance);
    }
    return problem(HttpStatus.INTERNAL_SERVER_ERROR, 'INTERNAL_ERROR', 'An unexpected error occurred; it has been logged.', instance);
  }
}

export function problem(status: number, code: string, detail: string, instance: string, more: Record<string, unknown> = {}): ProblemDetails {
  return {
    type: `urn:token-ledger:problem:${code.toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[code] ?? httpTitle(status),
    status,
    code,
    detail,
    instance,
    ...more,
  };
}

/** Answers a request from a Fastify hook (outside Nest's filters) with a problem. */
export function sendProblem(reply: FastifyReply, request: FastifyRequest, status: number, code: string, detail: string): FastifyReply {
  return reply.code(status).header('content-type', 'application/problem+json; charset=utf-8').send(problem(status, code, detail, request.url));
}

function httpCode(status: number): string {
  return HttpStatus[status] ?? `HTTP_${status}`;
}

function httpTitle(status: number): string {
  return httpCode(status).toLowerCase().replaceAll('_', ' ').replace(/^./, (first) => first.toUpperCase());
}

/** Keeps what a Nest HttpException carried beyond its message (terminus puts the health report there). */
function extensions(response: string | object): Record<string, unknown> {
  if (typeof response !== 'object') return {};
  const { message: _message, statusCode: _statusCode, error: _error, ...rest } = response as Record<string, unknown>;
  return rest;
}

function isFastifyClientError(error: unknown): error is { statusCode: number; code?: string; message: string } {
  if (typeof error !== 'object' || error === null) return false;
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  return typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500;
}

function describe(exception: unknown): string {
  return exception instanceof Error ? `${exception.name}: ${exception.message}` : String(exception);
}
