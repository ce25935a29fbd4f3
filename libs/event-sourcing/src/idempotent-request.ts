import { v5 as uuidv5 } from 'uuid';

/**
 * A request that carries an Idempotency-Key, as the command path sees it. The ids of the events it
 * appends are derived from `requestId`, so a retry of the same request (after a crash, a lost
 * response, a lapsed lease) produces the SAME event ids and the event store recognises it.
 */
export type IdempotentRequest = {
  /** The client's Idempotency-Key, recorded in every event's metadata. */
  readonly key: string;
  /** UUIDv5 of (scope, key, method, route, request hash): see `idempotentRequestId`. */
  readonly requestId: string;
  /**
   * No event of this request can have been recorded before this instant: when its key was first
   * claimed, less a margin for clock skew between the API and the event store. Bounds the search.
   */
  readonly notBefore: Date;
  /**
   * True when this request's claim was its key's first (ADR 0008): no attempt of it can be in the
   * stream, unless its key row was purged long after an attempt, which the PostgreSQL store's unique
   * event ids refuse (the append then finds that attempt) and EventStoreDB's search window would
   * miss anyway. A request alone on its stream then decides without looking first.
   */
  readonly firstClaim?: boolean;
};

/** Namespace of every id derived here (a fixed, random UUID: changing it would break dedup of stored keys). */
export const IDEMPOTENCY_NAMESPACE = '3b0f6c2e-5d0a-4c55-9a57-8f1f6a4de0b1';

/** Clock skew tolerated between the key's claim time and the events' recorded time. */
export const IDEMPOTENCY_CLOCK_MARGIN_MS = 5 * 60_000;

export type IdempotentRequestParts = {
  readonly scope: string;
  readonly key: string;
  readonly method: string;
  readonly route: string;
  /**
   * SHA-256 of method, route (the url as sent) and canonical body, as every version computes it: the
   * key row's `request_hash`. A retry spelled another way reuses the key's first request id rather
   * than derive its own (ADR 0008, addendum).
   */
  readonly requestHash: string;
};

/** The request's UUIDv5: the same parts give the same id in every process, forever. */
export function idempotentRequestId({ scope, key, method, route, requestHash }: IdempotentRequestParts): string {
  // Newline-separated, each part length-prefixed, so no two different tuples share a name.
  const name = [scope, key, method, route, requestHash].map((part) => `${part.length}:${part}`).join('\n');
  return uuidv5(name, IDEMPOTENCY_NAMESPACE);
}

/** The id of the `index`-th event a request appends (0-based). */
export function idempotentEventId(requestId: string, index: number): string {
  return uuidv5(`event:${index}`, requestId);
}

/** Any other value a request needs to be the same on every retry (e.g. the id of the payment it opens). */
export function idempotentValueId(requestId: string, name: string): string {
  return uuidv5(`value:${name}`, requestId);
}
