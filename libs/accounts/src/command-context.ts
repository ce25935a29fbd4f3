import type { EventMetadata } from '@app/event-store';
import type { IdempotentRequest } from './idempotent-request.js';

/** Who and what asked for a command; recorded in the metadata of every event it appends. */
export type CommandContext = {
  readonly requestId: string;
  /** Present when the request carries an Idempotency-Key: its events get ids derived from it. */
  readonly idempotency?: IdempotentRequest;
};

export const EVENT_SCHEMA_VERSION = 1;

export function eventMetadata(context: CommandContext): EventMetadata {
  const base = { schemaVersion: EVENT_SCHEMA_VERSION, requestId: context.requestId, correlationId: context.requestId };
  if (context.idempotency === undefined) return base;
  return { ...base, idempotencyKey: context.idempotency.key, idempotentRequestId: context.idempotency.requestId };
}
