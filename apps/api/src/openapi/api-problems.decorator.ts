import { HttpStatus } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import { PROBLEM_TYPES, type ErrorCode } from '../http/problem-types.js';

/** The extension that carries an operation's own problem codes to `completeContract`, which removes it. */
export const PROBLEM_CODES_EXTENSION = 'x-problem-codes';

/**
 * Problems that come from the framework rather than from a coded error (ProblemDetailsFilter names
 * them by their HTTP status): an unexpected failure, Nest's own NotFoundException, terminus' 503,
 * and the refusals of Fastify's body parsing, which Nest hands over as HttpExceptions: a body that
 * is not JSON (or is empty) under `application/json`, and one over the body limit.
 */
export const FRAMEWORK_PROBLEMS = {
  INTERNAL_ERROR: { status: HttpStatus.INTERNAL_SERVER_ERROR, title: 'Internal error' },
  NOT_FOUND: { status: HttpStatus.NOT_FOUND, title: 'Not found' },
  SERVICE_UNAVAILABLE: { status: HttpStatus.SERVICE_UNAVAILABLE, title: 'Service unavailable' },
  BAD_REQUEST: { status: HttpStatus.BAD_REQUEST, title: 'Bad request' },
  PAYLOAD_TOO_LARGE: { status: HttpStatus.PAYLOAD_TOO_LARGE, title: 'Payload too large' },
} as const;

/** A code an operation can answer with: one of the error-code table, or one of the framework's. */
export type ProblemCode = ErrorCode | keyof typeof FRAMEWORK_PROBLEMS;

/** How a problem code reaches the caller: its status, title, public code (the code sent), and Retry-After. */
export type ProblemDescription = { readonly status: number; readonly title: string; readonly publicCode: string; readonly detail: string; readonly retryAfterSeconds?: number };

export function describeProblem(code: ProblemCode): ProblemDescription {
  if (Object.hasOwn(FRAMEWORK_PROBLEMS, code)) {
    const framework = FRAMEWORK_PROBLEMS[code as keyof typeof FRAMEWORK_PROBLEMS];
    return { status: framework.status, title: framework.title, publicCode: code, detail: framework.title };
  }
  const type = PROBLEM_TYPES[code as ErrorCode];
  return {
    status: type.status,
    title: type.title,
    publicCode: type.publicCode ?? code,
    detail: type.detail?.(type.title) ?? type.title,
    ...(type.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: type.retryAfterSeconds }),
  };
}

/** The codes a write through the command bus can answer, whatever the command. */
export const COMMAND_WRITE_PROBLEMS = ['CONCURRENCY_CONFLICT', 'APPEND_DEADLINE_EXCEEDED'] as const satisfies readonly ErrorCode[];

/**
 * The expected rejections of one operation, by code (PROBLEM_TYPES gives each its status and title).
 * The codes every operation of its kind can answer (credentials, validation, Idempotency-Key, rate
 * limits, an unexpected failure) are added by `completeContract`; list here only what the operation
 * itself decides. One per method.
 */
export function ApiProblems(...codes: readonly ProblemCode[]): MethodDecorator {
  return ApiExtension(PROBLEM_CODES_EXTENSION, [...codes]);
}
