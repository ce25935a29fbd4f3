import type { EventMetadata } from '@app/event-store';
import type { IdempotentRequest } from './idempotent-request.js';

/**
 * Who asked, as recorded in event metadata. For an HTTP request it is the authenticated caller
 * (`kind` `jwt` or `api_key`, `role` one of the service's roles); for work the service starts on its
 * own it names that work (`kind` `job` or `webhook`, `role` `system` or `provider`).
 */
export type CommandActor = {
  readonly subject: string;
  readonly role: string;
  readonly kind: string;
};

/** Who and what asked for a command; recorded in the metadata of every event it appends. */
export type CommandContext = {
  /** The request (or job run) that issued the command: every event it appends is caused by it. */
  readonly requestId: string;
  /** Ties together everything done for one business operation; the request id when not given. */
  readonly correlationId?: string;
  readonly actor: CommandActor;
  /** Present when the request carries an Idempotency-Key: its events get ids derived from it. */
  readonly idempotency?: IdempotentRequest;
};

export const EVENT_SCHEMA_VERSION = 1;

/** The audit trail every appended event carries (issue 6): actor, request, correlation, causation, idempotency key. */
export function eventMetadata(context: CommandContext): EventMetadata {
  const base = {
    schemaVersion: EVENT_SCHEMA_VERSION,
    requestId: context.requestId,
    correlationId: context.correlationId ?? context.requestId,
    causationId: context.requestId,
    actor: { subject: context.actor.subject, role: context.actor.role, kind: context.actor.kind },
  };
  if (context.idempotency === undefined) return base;
  return { ...base, idempotencyKey: context.idempotency.key, idempotentRequestId: context.idempotency.requestId };
}

/** The actor of work the service starts itself (a scheduled job, a provider notification). */
export function systemActor(subject: string, kind: 'job' | 'webhook'): CommandActor {
  return { subject, role: kind === 'webhook' ? 'provider' : 'system', kind };
}
