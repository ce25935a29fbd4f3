import { ForbiddenException, NotFoundException, ServiceUnavailableException } from '@nestjs/common';
import { AccountNotFoundError, ChainBrokenError, StreamNotReplayableError } from '@app/operations';
import { AppendDeadlineError, ConcurrencyConflictError } from '@app/event-sourcing';
import { AccessDeniedError, ApiKeyNameTakenError, AuthenticationError, KeySetUnavailableError } from '@app/auth';
import { CodedError, LedgerError } from '@app/ledger';
import { PaymentProviderError, PaymentsError } from '@app/payments';
import { RebuildInProgressError, UnknownProjectionError } from '@app/projections';
import { IdempotencyKeyError } from './idempotency/idempotency.errors.js';
import { ProblemDetailsFilter } from './problem-details.filter.js';
import { RequestValidationError } from './request-validation.error.js';

const INSTANCE = '/v1/accounts/u/use?x=1';

/** The lines the filter logs, as pino gets them: the fields, then the message. */
const logged: { level: 'warn' | 'error'; fields: unknown; message: string }[] = [];
const logger = {
  warn: (fields: unknown, message: string) => logged.push({ level: 'warn', fields, message }),
  error: (fields: unknown, message: string) => logged.push({ level: 'error', fields, message }),
};

/** What the filter sends for an exception: the status and the body (and the headers, by `withHeaders`). */
function answer(exception: unknown): { status: number; body: unknown } {
  const { status, body } = withHeaders(exception);
  return { status, body };
}

function withHeaders(exception: unknown): { status: number; body: unknown; headers: Record<string, string> } {
  const sent = { status: 0, body: undefined as unknown, headers: {} as Record<string, string> };
  const reply = {
    status: (status: number) => ((sent.status = status), reply),
    header: (name: string, value: string) => ((sent.headers[name] = value), reply),
    send: (body: unknown) => ((sent.body = body), reply),
  };
  const host = { switchToHttp: () => ({ getRequest: () => ({ url: INSTANCE, method: 'POST', id: 'req-1' }), getResponse: () => reply }) };
  new ProblemDetailsFilter(logger as never).catch(exception, host as never);
  return sent;
}

function body(type: string, title: string, status: number, code: string, detail: string, more: Record<string, unknown> = {}) {
  return { status, body: { type: `urn:token-ledger:problem:${type}`, title, status, code, detail, instance: INSTANCE, ...more } };
}

describe('ProblemDetailsFilter', () => {
  beforeEach(() => logged.splice(0));

  it("answers a ledger rejection with its code's status and its details", () => {
    expect(answer(new LedgerError('INSUFFICIENT_BALANCE', 'short', { balance: 10, requested: 11 }))).toEqual(
      body('insufficient-balance', 'Insufficient token balance', 409, 'INSUFFICIENT_BALANCE', 'short', { balance: 10, requested: 11 }),
    );
  });

  it('answers the rejections of the other libs with the members they always had', () => {
    expect(answer(new ConcurrencyConflictError('kept changing'))).toEqual(body('concurrency-conflict', 'The account changed concurrently; retry the request', 409, 'CONCURRENCY_CONFLICT', 'kept changing'));
    expect(answer(new AccountNotFoundError('u-1'))).toEqual(body('account-not-found', 'The account has no events', 404, 'ACCOUNT_NOT_FOUND', 'no events for user u-1', { userId: 'u-1' }));
    expect(answer(new ChainBrokenError('u-1', 7n, 'hash mismatch'))).toEqual(
      body('chain-broken', 'The hash chain of the stream does not verify', 409, 'CHAIN_BROKEN', 'the hash chain of user u-1 breaks at revision 7: hash mismatch', { firstBadRevision: '7', reason: 'hash mismatch' }),
    );
    expect(answer(new StreamNotReplayableError('u-1', 'gap'))).toEqual(
      body('stream-not-replayable', 'The stream breaks the ledger invariants', 409, 'STREAM_NOT_REPLAYABLE', 'the stream of user u-1 cannot be replayed: gap', { reason: 'gap' }),
    );
    expect(answer(new PaymentsError('PACKAGE_NOT_FOUND', 'no package x', { packageId: 'x', known: 'a' }))).toEqual(
      body('package-not-found', 'Token package not found', 404, 'PACKAGE_NOT_FOUND', 'no package x', { packageId: 'x', known: 'a' }),
    );
    expect(answer(new UnknownProjectionError('nope', ['token_accounts']))).toEqual(
      body('unknown-projection', 'No projection has this name', 404, 'UNKNOWN_PROJECTION', 'no projection is named nope; known: token_accounts', { projection: 'nope' }),
    );
    expect(answer(new ApiKeyNameTakenError('ops'))).toEqual(body('api-key-name-taken', 'An API key not revoked already has this name', 409, 'API_KEY_NAME_TAKEN', 'an API key not revoked is already named "ops" (an expired key keeps its name until it is revoked)', { keyName: 'ops' }));
  });

  it('shows a running rebuild by id, and null when its id is unknown', () => {
    expect(answer(new RebuildInProgressError('token_accounts', 'r-1')).body).toMatchObject({ code: 'REBUILD_IN_PROGRESS', status: 409, projection: 'token_accounts', rebuildId: 'r-1' });
    expect(answer(new RebuildInProgressError('token_accounts')).body).toMatchObject({ detail: 'a rebuild of token_accounts is already running', rebuildId: null });
  });

  it('tells the caller to retry a provider failure, with its kind', () => {
    expect(answer(new PaymentProviderError('mock provider timed out capturing o-1', 'timeout'))).toEqual(
      body('provider-unavailable', 'The payment provider did not answer; retry the request', 502, 'PROVIDER_UNAVAILABLE', 'mock provider timed out capturing o-1; retry the request', { providerError: 'timeout' }),
    );
  });

  it('keeps the reason of a refused credential and the JWKS failure out of the body', () => {
    expect(answer(new AuthenticationError('TOKEN_EXPIRED', 'the token has expired'))).toEqual(
      body('unauthenticated', 'Authentication required', 401, 'UNAUTHENTICATED', 'missing or invalid credentials: send Authorization: Bearer <JWT> or X-API-Key'),
    );
    expect(answer(new KeySetUnavailableError('the JSON Web Key Set could not be fetched'))).toEqual(
      body('authentication-unavailable', 'Credentials cannot be checked right now', 503, 'AUTHENTICATION_UNAVAILABLE', 'credentials cannot be checked right now; retry later'),
    );
    expect(answer(new AccessDeniedError('a user may not perform x here'))).toEqual(body('forbidden', 'Not allowed', 403, 'FORBIDDEN', 'a user may not perform x here'));
  });

  it('lists every violated field of a request, and refuses a bad Idempotency-Key', () => {
    const violations = [{ field: 'amount', rule: 'isInt', message: 'amount must be an integer' }];
    expect(answer(new RequestValidationError(violations))).toEqual(body('validation-failed', 'The request is not valid', 400, 'VALIDATION_FAILED', 'amount must be an integer', { errors: violations }));
    expect(answer(new IdempotencyKeyError('IDEMPOTENCY_KEY_REUSED', 'used with a different request'))).toEqual(
      body('idempotency-key-reused', 'Idempotency-Key reused with a different request', 422, 'IDEMPOTENCY_KEY_REUSED', 'used with a different request'),
    );
  });

  it("answers Nest's HTTP exceptions by their status, keeping what their response carried", () => {
    expect(answer(new NotFoundException('no rebuild 1 of x'))).toEqual(body('not-found', 'Not found', 404, 'NOT_FOUND', 'no rebuild 1 of x'));
    expect(answer(new ForbiddenException())).toEqual(body('forbidden', 'Not allowed', 403, 'FORBIDDEN', 'Forbidden'));
    const health = answer(new ServiceUnavailableException({ details: { database: { status: 'down' } } }));
    expect(health).toMatchObject({ status: 503, body: { status: 503, code: 'SERVICE_UNAVAILABLE', details: { database: { status: 'down' } } } });
  });

  it('answers a database that cannot be reached with 503 DATABASE_UNAVAILABLE and Retry-After, whatever the driver said', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const shutdown = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    const broken = Object.assign(new Error('connection failure'), { code: '08006' });
    const aggregate = Object.assign(new AggregateError([refused], 'connect failed'), { code: undefined });
    const wrapped = new Error('the batch failed', { cause: new Error('Connection terminated unexpectedly') });
    const unavailable = body('database-unavailable', 'The database cannot be reached right now; retry shortly', 503, 'DATABASE_UNAVAILABLE', 'the database cannot be reached right now; retry shortly');
    for (const failure of [refused, shutdown, broken, aggregate, wrapped, new Error('timeout exceeded when trying to connect')]) {
      const sent = withHeaders(failure);
      expect({ status: sent.status, body: sent.body, retryAfter: sent.headers['retry-after'] }).toEqual({ ...unavailable, retryAfter: '2' });
    }
    // A statement the server refused for another reason stays a 500.
    expect(answer(Object.assign(new Error('syntax error'), { code: '42601' })).status).toBe(500);
  });

  it('tells the caller to retry an append past its deadline, with what is known of it', () => {
    const sent = withHeaders(new AppendDeadlineError('stream s: the append did not finish within 5000 ms', { deadlineMs: 5_000, applied: 'no' }));
    expect(sent).toEqual({
      ...body('append-deadline-exceeded', 'The write did not finish in time; retry the request', 503, 'APPEND_DEADLINE_EXCEEDED', 'stream s: the append did not finish within 5000 ms', { deadlineMs: 5_000, applied: 'no' }),
      headers: { 'retry-after': '1', 'content-type': 'application/problem+json; charset=utf-8' },
    });
  });

  it('answers an unknown error, or a coded one the table does not map, with a 500 that tells nothing', () => {
    class Unmapped extends CodedError<'NOT_IN_THE_TABLE'> {}
    const internal = body('internal-error', 'Internal error', 500, 'INTERNAL_ERROR', 'An unexpected error occurred; it has been logged.');
    expect(answer(new Error('boom'))).toEqual(internal);
    expect(answer(new Unmapped('NOT_IN_THE_TABLE', 'secret', {}))).toEqual(internal);
  });

  it("logs a 500 with the request's id and the stack, a 503 with the id, and an expected rejection not at all", () => {
    const boom = new Error('boom');
    answer(boom);
    answer(new AppendDeadlineError('stream s: the append did not finish within 5000 ms', { deadlineMs: 5_000, applied: 'no' }));
    answer(new LedgerError('INSUFFICIENT_BALANCE', 'short', { balance: 10, requested: 11 }));
    expect(logged).toEqual([
      { level: 'error', fields: { requestId: 'req-1', context: 'HTTP', stack: boom.stack }, message: `POST ${INSTANCE} failed: Error: boom` },
      { level: 'warn', fields: { requestId: 'req-1', context: 'HTTP' }, message: expect.stringContaining(`POST ${INSTANCE}: APPEND_DEADLINE_EXCEEDED`) as unknown },
    ]);
  });
});
