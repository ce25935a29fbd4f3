import type { CommandContext } from '@app/accounts';
import type { FastifyRequest } from 'fastify';
import { idempotentRequestOf } from './idempotency/idempotency.hooks.js';

/** The request's id and, when it claimed an Idempotency-Key, what its events' ids derive from. */
export function commandContextOf(request: FastifyRequest): CommandContext {
  const idempotency = idempotentRequestOf(request);
  return idempotency === undefined ? { requestId: request.id } : { requestId: request.id, idempotency };
}

/** How the OpenAPI document describes the Idempotency-Key header of a write. */
export const IDEMPOTENCY_KEY_API_HEADER = { name: 'Idempotency-Key', required: false, description: 'Repeats with the same key and body return the first response.' };
