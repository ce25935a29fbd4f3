import type { CommandContext } from '@app/event-sourcing';
import type { FastifyRequest } from 'fastify';
import { actorOf } from '../auth/access-control.js';
import { idempotentRequestOf } from './idempotency/idempotency.hooks.js';

export const CORRELATION_ID_HEADER = 'x-correlation-id';
const CORRELATION_ID_PATTERN = /^[\w.:-]{1,128}$/;

/**
 * What a command records about the request that issued it: the authenticated caller, the request id
 * (also the causation id), the caller's correlation id when it sent a valid X-Correlation-Id (else
 * the request id), and the Idempotency-Key the request claimed, if any.
 */
export function commandContextOf(request: FastifyRequest): CommandContext {
  const actor = actorOf(request);
  if (actor === undefined) throw new Error(`a command from ${request.method} ${request.url} without an authenticated caller`);
  const header = request.headers[CORRELATION_ID_HEADER];
  const correlationId = typeof header === 'string' && CORRELATION_ID_PATTERN.test(header) ? header : request.id;
  const idempotency = idempotentRequestOf(request);
  return { requestId: request.id, correlationId, actor, ...(idempotency === undefined ? {} : { idempotency }) };
}
