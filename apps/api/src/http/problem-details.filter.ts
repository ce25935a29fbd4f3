import { Catch, HttpException, HttpStatus, NotFoundException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { databaseUnavailableErrorOf } from '@app/database';
import type { CodedError } from '@app/ledger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RoutePaths } from './path-parameters.js';
import { unsupportedMediaTypeOf } from './request-body.js';
import { isErrorCode, isMappedError, PROBLEM_TYPES, type ErrorCode } from './problem-types.js';
import { loggableUrl } from './loggable-url.js';

export type ProblemDetails = {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly instance: string;
  readonly [extension: string]: unknown;
};

/**
 * Every error leaves as an RFC 9457 problem (application/problem+json) with a stable `code`: an
 * expected rejection by its code (PROBLEM_TYPES), Nest's and Fastify's own HTTP errors by their
 * status, a database that cannot be reached as 503 DATABASE_UNAVAILABLE, anything else as a logged 500.
 * A code whose type names a `retryAfterSeconds` also sends `Retry-After`. The 503 and 500 lines carry
 * the request's `requestId`, as its `request completed` line does.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  constructor(private readonly logger: Pick<Logger, 'warn' | 'error'>) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const problem = unreadableMediaTypeProblem(exception, request) ?? problemOf(exception, request.url);
    if (problem.status === 503) this.logger.warn({ requestId: request.id, context: 'HTTP' }, `${request.method} ${loggableUrl(request.url)}: ${problem.code} (${describe(exception)})`);
    else if (problem.status >= 500) {
      this.logger.error({ requestId: request.id, context: 'HTTP', ...(exception instanceof Error ? { stack: exception.stack } : {}) }, `${request.method} ${loggableUrl(request.url)} failed: ${describe(exception)}`);
    }
    void withRetryAfter(reply.status(problem.status), problem).header('content-type', 'application/problem+json; charset=utf-8').send(problem);
  }
}

/** The problem an exception answers with (see ProblemDetailsFilter); Fastify's error handler answers the same way. */
export function problemOf(exception: unknown, instance: string): ProblemDetails {
  if (isMappedError(exception)) return codedProblem(exception, instance);
  const unavailable = databaseUnavailableErrorOf(exception);
  if (unavailable !== undefined) return codedProblem(unavailable, instance);
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const code = httpCode(status);
    return problem(status, code, titleOf(code, status), exception.message, instance, extensions(exception.getResponse()));
  }
  if (isFastifyClientError(exception)) {
    const code = exception.code ?? httpCode(exception.statusCode);
    return problem(exception.statusCode, code, titleOf(code, exception.statusCode), exception.message, instance);
  }
  return problem(HttpStatus.INTERNAL_SERVER_ERROR, 'INTERNAL_ERROR', 'Internal error', 'An unexpected error occurred; it has been logged.', instance);
}

/** Sets `Retry-After` when the problem's code names one. */
function withRetryAfter(reply: FastifyReply, body: ProblemDetails): FastifyReply {
  const seconds = isErrorCode(body.code) ? PROBLEM_TYPES[body.code].retryAfterSeconds : undefined;
  return seconds === undefined ? reply : reply.header('retry-after', String(seconds));
}

/** The problem of an expected rejection, as PROBLEM_TYPES maps its code; its details (after the code's refused field and rule) become extra members. */
export function codedProblem(error: CodedError<ErrorCode>, instance: string): ProblemDetails {
  const type = PROBLEM_TYPES[error.code];
  return problem(type.status, type.publicCode ?? error.code, type.title, type.detail?.(error.message) ?? error.message, instance, { ...type.input, ...error.details });
}

/**
 * The members RFC 9457 and our contract define, then the extensions. The defined ones are written
 * again after the extensions, so a detail named like one (terminus' `status`) cannot replace it; they
 * keep their place first in the body.
 */
function problem(status: number, code: string, title: string, detail: string, instance: string, more: Readonly<Record<string, unknown>> = {}): ProblemDetails {
  const defined = { type: `urn:token-ledger:problem:${code.toLowerCase().replaceAll('_', '-')}`, title, status, code, detail, instance };
  return { ...defined, ...more, ...defined };
}

type FrameworkError = { readonly statusCode?: number; readonly code?: string; readonly message: string };

/**
 * Fastify's own refusals made before any route or hook runs, with the same problem body as every
 * other 4xx instead of Fastify's plain JSON, and never Fastify's codes or messages. A path parameter
 * longer than the router takes (which Fastify answers 414 FST_ERR_MAX_PARAM_LENGTH) is refused as
 * validation refuses a parameter, 400 VALIDATION_FAILED naming it (found among `routes`) and the
 * limit; a path no route has stays the 404 a shorter value gets. A path that is not valid
 * percent-encoding (FST_ERR_BAD_URL) is 400 VALIDATION_FAILED naming the parameter, or `path`.
 */
export function frameworkProblems(routes: RoutePaths): (error: FrameworkError, request: FastifyRequest, reply: FastifyReply) => void {
  return (error, request, reply) => {
    if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
      const refused = routes.tooLongParameter(request.method, request.url);
      if (refused !== undefined) void sendProblem(reply, request, refused);
      else void sendBody(reply, problemOf(new NotFoundException(`Cannot ${request.method} ${request.url}`), request.url));
      return;
    }
    if (error.code === 'FST_ERR_BAD_URL') {
      void sendProblem(reply, request, routes.badlyEncoded(request.method, request.url));
      return;
    }
    const unreadable = unreadableMediaTypeProblem(error, request);
    if (unreadable !== undefined) {
      void sendBody(reply, unreadable);
      return;
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : HttpStatus.BAD_REQUEST;
    const code = error.code ?? httpCode(status);
    void sendBody(reply, problem(status, code, titleOf(code, status), error.message, request.url));
  };
}

/**
 * A Content-Type Fastify cannot read as one media type (`application/json, text/plain`, `,`): the 415
 * UNSUPPORTED_MEDIA_TYPE every other type gets from the body parser, naming what was received and
 * what is accepted, not Fastify's bare "Unsupported Media Type" (FST_ERR_CTP_INVALID_MEDIA_TYPE,
 * which reaches Nest's filter as a plain HttpException of 415; every 415 of ours is coded).
 */
function unreadableMediaTypeProblem(exception: unknown, request: FastifyRequest): ProblemDetails | undefined {
  const fastify = typeof exception === 'object' && exception !== null && (exception as { code?: unknown }).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE';
  const nest = exception instanceof HttpException && exception.getStatus() === Number(HttpStatus.UNSUPPORTED_MEDIA_TYPE);
  if (!fastify && !nest) return undefined;
  return codedProblem(unsupportedMediaTypeOf(request), request.url);
}

function sendBody(reply: FastifyReply, body: ProblemDetails): FastifyReply {
  return reply.code(body.status).header('content-type', 'application/problem+json; charset=utf-8').send(body);
}

/** Answers a request from a Fastify hook (outside Nest's filters) with the problem of an expected rejection. */
export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: CodedError<ErrorCode>): FastifyReply {
  const body = codedProblem(error, request.url);
  return withRetryAfter(reply.code(body.status), body).header('content-type', 'application/problem+json; charset=utf-8').send(body);
}

function httpCode(status: number): string {
  return HttpStatus[status] ?? `HTTP_${status}`;
}

/** A Nest or Fastify error whose code happens to be one of ours (a Nest ForbiddenException is FORBIDDEN) gets our title. */
function titleOf(code: string, status: number): string {
  return isErrorCode(code) ? PROBLEM_TYPES[code].title : httpTitle(status);
}

function httpTitle(status: number): string {
  return httpCode(status).toLowerCase().replaceAll('_', ' ').replace(/^./, (first) => first.toUpperCase());
}

/**
 * Keeps what a Nest HttpException carried beyond its message (terminus puts the health report there),
 * never a member of the problem itself: a health report's `status: 'error'` is not a status code.
 */
function extensions(response: string | object): Record<string, unknown> {
  if (typeof response !== 'object') return {};
  const { message: _message, statusCode: _statusCode, error: _error, ...rest } = response as Record<string, unknown>;
  return Object.fromEntries(Object.entries(rest).filter(([member]) => !PROBLEM_MEMBERS.has(member)));
}

const PROBLEM_MEMBERS: ReadonlySet<string> = new Set(['type', 'title', 'status', 'code', 'detail', 'instance']);

function isFastifyClientError(error: unknown): error is { statusCode: number; code?: string; message: string } {
  if (typeof error !== 'object' || error === null) return false;
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  return typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500;
}

/** The exception and what caused it, for the log (a provider's own words live on the cause, never in a problem's detail). */
function describe(exception: unknown): string {
  if (!(exception instanceof Error)) return String(exception);
  const cause: unknown = exception.cause;
  const causes = cause instanceof Error && cause !== exception ? `; caused by ${cause.name}: ${cause.message}` : '';
  return `${exception.name}: ${exception.message}${causes}`;
}
