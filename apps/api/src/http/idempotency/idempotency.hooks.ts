import { Logger } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest, onSendAsyncHookHandler, preHandlerAsyncHookHandler } from 'fastify';
import { IDEMPOTENCY_CLOCK_MARGIN_MS, idempotentRequestId, type IdempotentRequest } from '@app/event-sourcing';
import { actorOf } from '../../auth/access-control.js';
import { DatabaseUnavailableError } from '@app/database';
import { codedProblem, sendProblem } from '../problem-details.filter.js';
import { PROBLEM_TYPES } from '../problem-types.js';
import { withHook } from '../route-hooks.js';
import { IdempotencyKeyError } from './idempotency.errors.js';
import type { ClaimHolder, IdempotencyStore, RequestIdentity } from './idempotency.store.js';
import { requestFingerprints } from './request-fingerprint.js';
import { loggableUrl } from '../loggable-url.js';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const REPLAYED_HEADER = 'idempotent-replayed';
/** 1 to 255 visible ASCII characters (the OpenAPI document states the same pattern). */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const MUTATING_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export type IdempotencyOptions = {
  /** How long a repeat waits for the first request with its key before answering 409. */
  readonly waitMsMax: number;
  readonly pollIntervalMs: number;
};

/** `firstClaim`: no earlier attempt of the request can exist; `holder`: its claim's id and lease owner, which end the key only while they hold it (see `Claim`). */
type Claimed = { readonly scope: string; readonly key: string; readonly request: IdempotentRequest; readonly firstClaim: boolean; readonly holder: ClaimHolder };
const claims = new WeakMap<FastifyRequest, Claimed>();

/**
 * The Idempotency-Key of a request that claimed one, for its command: the ids of the events it
 * appends are derived from it, so a retry after a crash finds them instead of doing the work again.
 */
export function idempotentRequestOf(request: FastifyRequest): IdempotentRequest | undefined {
  return claims.get(request)?.request;
}

/**
 * Idempotency-Key for every mutating route, implemented once as Fastify hooks:
 * - the first request with a key claims it (preHandler) and its response is stored (onSend);
 * - a repeat with the same method, path and body gets the stored status and body, without the work,
 *   marked `Idempotent-Replayed: true`; with another body it gets 422 IDEMPOTENCY_KEY_REUSED. "The
 *   same" is read as the API reads a request: a path UUID in either case or percent-escaped, an optional top-level field
 *   missing or null, no body or `{}` (`requestFingerprints`);
 * - a repeat while the first is still running waits for it and replays its response (409
 *   IDEMPOTENCY_KEY_IN_PROGRESS only if it takes longer than `waitMsMax`).
 * Responses that invite a retry (5xx, 409 CONCURRENCY_CONFLICT) are not stored: the key is freed so
 * the retry does the work. A 400 or 401 (refused before any work) forgets the key altogether, so a
 * corrected request may use it, unless the key was taken over from an earlier attempt of the request
 * (which may have done the work): then the key stays with that request. Provider notifications
 * (webhooks) are left out.
 *
 * The key row is not in the transaction of the work, so it alone cannot stop a retry after a crash
 * (work appended, response never stored) from doing the work again. The command path closes that:
 * the events of a keyed request get ids derived from the request (`idempotentRequestOf`), and a retry
 * finds its earlier attempt's events in the stream and answers from them (CommandHandling.handle).
 */
export function registerIdempotency(fastify: FastifyInstance, store: IdempotencyStore, options: IdempotencyOptions): void {
  const claim = claimingHook(store, options);
  const complete = completingHook(store);
  // Bound to the routes that can take a key, when each is added: reads and provider notifications
  // (which carry their own signature, see isProviderNotification) get no hook at all.
  fastify.addHook('onRoute', (route) => {
    const handling = idempotencyKeyHandling(route.method, route.url);
    if (handling === 'none') return;
    if (handling === 'refused') {
      route.preHandler = withHook(route.preHandler, refuseKey, 'last');
      return;
    }
    route.preHandler = withHook(route.preHandler, claim, 'last');
    route.onSend = withHook(route.onSend, complete, 'last');
  });
}

/**
 * What a route does with an Idempotency-Key: `honoured` (claimed, the response stored and replayed),
 * `refused` (a request that sends one is refused) or `none` (reads and provider notifications: the
 * header is not looked at). The hooks and the OpenAPI document both ask this.
 */
export function idempotencyKeyHandling(method: string | readonly string[], routeUrl: string): 'honoured' | 'refused' | 'none' {
  const methods = typeof method === 'string' ? [method] : method;
  if (!methods.some((each) => MUTATING_METHODS.has(each.toUpperCase())) || isProviderNotification(routeUrl)) return 'none';
  return isApiKeyManagement(routeUrl) ? 'refused' : 'honoured';
}

/**
 * Where a key cannot be honoured, one sent is refused rather than ignored: a client that retries
 * trusting it would do the work twice.
 */
const refuseKey: preHandlerAsyncHookHandler = async (request, reply) => {
  if (request.headers[IDEMPOTENCY_HEADER] === undefined) return undefined;
  return sendProblem(
    reply,
    request,
    new IdempotencyKeyError('IDEMPOTENCY_KEY_INVALID', 'this route does not take an Idempotency-Key: the stored response would keep the new key\'s secret', { rule: 'notTaken' }),
  );
};

/** Claims the key of a request that sends one, or answers for the request that has it. */
function claimingHook(store: IdempotencyStore, options: IdempotencyOptions): preHandlerAsyncHookHandler {
  return async (request, reply) => {
    const header = request.headers[IDEMPOTENCY_HEADER];
    if (header === undefined || !MUTATING_METHODS.has(request.method)) return undefined;
    if (typeof header !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(header)) {
      return sendProblem(reply, request, new IdempotencyKeyError('IDEMPOTENCY_KEY_INVALID', 'Idempotency-Key must be 1 to 255 visible ASCII characters'));
    }
    const scope = scopeOf(request);
    const identity = identityOf(scope, header, request);
    let claim = await store.claim(scope, header, identity);
    const deadline = Date.now() + options.waitMsMax;
    while (claim.kind === 'in_progress' && claim.sameRequest && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, options.pollIntervalMs));
      // claim, not find: it also takes over a key whose first request released it or died.
      claim = await store.claim(scope, header, identity);
    }
    if (claim.kind === 'claimed') {
      // The key's first request's id, which may not be this attempt's own (a path spelled in another
      // case): a retry finds the events an earlier attempt appended by the ids derived from it.
      const notBefore = new Date(claim.firstClaimedAt.getTime() - IDEMPOTENCY_CLOCK_MARGIN_MS);
      claims.set(request, { scope, key: header, request: { key: header, requestId: claim.requestId, notBefore, firstClaim: claim.firstClaim }, firstClaim: claim.firstClaim, holder: { claimId: claim.claimId, owner: claim.owner } });
      return undefined;
    }
    if (!claim.sameRequest) {
      return sendProblem(reply, request, new IdempotencyKeyError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request (method, path or body)'));
    }
    if (claim.kind === 'in_progress') {
      return sendProblem(reply, request, new IdempotencyKeyError('IDEMPOTENCY_KEY_IN_PROGRESS', 'a request with this Idempotency-Key is still in progress; retry later'));
    }
    if (claim.response.location !== undefined) void reply.header('location', claim.response.location);
    return reply.code(claim.response.status).header('content-type', claim.response.contentType).header(REPLAYED_HEADER, 'true').send(claim.response.body);
  };
}

/**
 * Stores the response of a request that claimed a key, or frees the key when the response invites a
 * retry. A store that fails then (the database gone between the work and this) is logged, and the key
 * stays claimed until its lease lapses; a retry then takes it over (ADR 0030). Work done (a 2xx) is
 * still answered as it is: the retry answers from the events the work appended. Thrown, the error
 * would replace a 201 of work done with Fastify's own 500 body, after a second try of the store on
 * that answer. A refusal (a final 4xx) appended nothing a retry could find: unstored, the retry would
 * decide again, and could be let through (the account topped up since), contradicting the refusal
 * the key answered. So it is answered as what it has become, 503 DATABASE_UNAVAILABLE (retry), the
 * key released if the database answers that, and the retry's answer is the first one the key stores.
 * A key that was to be freed (a 400 or 401, or an answer that invites a retry) is freed later, in the
 * background (`settleLater`), so that the corrected request a 400 asks for can use it.
 */
function completingHook(store: IdempotencyStore): onSendAsyncHookHandler {
  const logger = new Logger('Idempotency');
  return async (request, reply, payload) => {
    const claimed = claims.get(request);
    if (claimed === undefined) return payload;
    claims.delete(request);
    const settlement = settlementOf(request, reply, payload);
    try {
      await settleClaim(store, settlement, claimed);
    } catch (error) {
      logger.warn(`Idempotency-Key of ${request.method} ${loggableUrl(request.url)} (request ${request.id}) left claimed, its ${reply.statusCode} not stored: ${error instanceof Error ? error.message : String(error)}`);
      if (settlement.kind === 'complete' && reply.statusCode >= 400) {
        // Freed, if the database answers again, so the retry the 503 asks for is not met by the key still held.
        await store.release(claimed.scope, claimed.key, claimed.holder).catch(() => undefined);
        return unstoredRefusal(request, reply);
      }
      // A key to free (a request refused before any work, or one inviting a retry) is freed once the
      // database answers again: tried later, in the background. Otherwise a 400's key would stay held
      // by the request it refused, and the corrected request the 400 asks for would meet 422
      // IDEMPOTENCY_KEY_REUSED until the key expires. Safe however late: the claim (`holder`) fences it.
      if (settlement.kind !== 'complete') settleLater(store, settlement, claimed, logger, `${request.method} ${loggableUrl(request.url)} (request ${request.id})`);
    }
    return payload;
  };
}

/** When a key that failed to be freed is tried again (ms after the failure); the claim's lock lapses before the last. */
export const SETTLE_RETRY_DELAYS_MS: readonly number[] = [1_000, 5_000, 30_000, 120_000];

/** Frees a claimed key in the background, at `SETTLE_RETRY_DELAYS_MS`, until the database answers; logged if it never does. */
function settleLater(store: IdempotencyStore, settlement: Settlement, claimed: Claimed, logger: Logger, what: string, attempt = 0): void {
  const delay = SETTLE_RETRY_DELAYS_MS[attempt];
  if (delay === undefined) {
    logger.warn(`Idempotency-Key of ${what} not freed after ${SETTLE_RETRY_DELAYS_MS.length} more tries; it stays held until it expires, or is taken over by a retry of the same request`);
    return;
  }
  setTimeout(() => {
    settleClaim(store, settlement, claimed).catch(() => settleLater(store, settlement, claimed, logger, what, attempt + 1));
  }, delay).unref();
}

/** 503 DATABASE_UNAVAILABLE in place of a refusal its key could not store (see `completingHook`). */
function unstoredRefusal(request: FastifyRequest, reply: FastifyReply): string {
  const body = codedProblem(new DatabaseUnavailableError(), request.url);
  void reply.code(body.status).header('content-type', 'application/problem+json; charset=utf-8').header('retry-after', String(PROBLEM_TYPES.DATABASE_UNAVAILABLE.retryAfterSeconds));
  reply.removeHeader('content-length');
  return JSON.stringify(body);
}

type Settlement =
  | { readonly kind: 'forget' }
  | { readonly kind: 'release' }
  | { readonly kind: 'complete'; readonly response: { readonly status: number; readonly contentType: string; readonly body: string; readonly location?: string } };

/** What `completingHook` does with a claimed key once the response is known. */
function settlementOf(request: FastifyRequest, reply: FastifyReply, payload: unknown): Settlement {
  const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
  // Refused before any work (validation, credentials): nothing to replay, and the client may correct
  // the request and send it again under the same key (see `settleClaim`).
  if (reply.statusCode === 400 || reply.statusCode === 401) return { kind: 'forget' };
  if (body === undefined || !isFinal(reply.statusCode, body, request.routeOptions.url ?? '')) return { kind: 'release' };
  const contentType = reply.getHeader('content-type');
  const location = reply.getHeader('location');
  return {
    kind: 'complete',
    response: {
      status: reply.statusCode,
      contentType: typeof contentType === 'string' ? contentType : 'application/json; charset=utf-8',
      body,
      ...(typeof location === 'string' ? { location } : {}),
    },
  };
}

async function settleClaim(store: IdempotencyStore, settlement: Settlement, claimed: Claimed): Promise<void> {
  if (settlement.kind === 'forget') {
    // Unless the key was taken over: an earlier attempt of the request may have done the work, and a
    // retry must still find the key (and the first request id) to find that work; so the key is only released.
    if (claimed.firstClaim) await store.forget(claimed.scope, claimed.key, claimed.holder);
    else await store.release(claimed.scope, claimed.key, claimed.holder);
    return;
  }
  if (settlement.kind === 'release') {
    await store.release(claimed.scope, claimed.key, claimed.holder);
    return;
  }
  await store.complete(claimed.scope, claimed.key, settlement.response, claimed.holder);
}

/**
 * Keys belong to the caller: two callers may use the same key without meeting, and no caller can
 * replay another's stored response. An API key made to replace another is that key's caller (its
 * `idempotencyScope`), so a retry sent with the rotated key is answered, not done again. Runs after
 * authentication (access-control hooks come first).
 */
function scopeOf(request: FastifyRequest): string {
  const actor = actorOf(request);
  if (actor === undefined) throw new Error(`Idempotency-Key on ${request.method} ${request.url} without an authenticated caller`);
  return `${actor.kind}:${actor.idempotencyScope ?? actor.subject}`;
}

/**
 * What the key row records of this request: both fingerprints, and the request id derived from the
 * legacy one and the path as sent, exactly as every version derives it (docs/adr/0008, addendum).
 */
function identityOf(scope: string, key: string, request: FastifyRequest): RequestIdentity {
  const { legacyHash, fingerprint } = requestFingerprints(request);
  return { legacyHash, fingerprint, requestId: idempotentRequestId({ scope, key, method: request.method, route: request.url, requestHash: legacyHash }) };
}

/**
 * Provider notifications carry their own signature and are harmless to replay; a key on them would
 * only let an unsigned request write a row before the signature check refuses it.
 */
function isProviderNotification(routeUrl: string): boolean {
  return routeUrl.startsWith('/v1/payments/webhooks/');
}

/** API keys are not created under an Idempotency-Key: the stored response would keep the new key's secret. */
function isApiKeyManagement(routeUrl: string): boolean {
  return routeUrl.startsWith('/v1/admin/api-keys');
}

/**
 * Conflicts that say "not yet" rather than "no": the client is told to send the request again (the
 * account changed under it; the buyer has not confirmed the payment yet; another rebuild of the
 * projection is running), and the same key must then do the work, not replay the refusal. A refund
 * the provider's refund failed for is one too: the request waits for a dispute (REFUND_PENDING), or
 * an operator may refund at the provider since, and asking again reserves nothing (it asks the
 * provider first), so the same key asks again.
 */
const RETRY_INVITED = ['"code":"CONCURRENCY_CONFLICT"', '"code":"PAYMENT_NOT_AUTHORIZED"', '"code":"REFUND_FAILED"', '"code":"REBUILD_IN_PROGRESS"'] as const;

/**
 * A refund the provider has not finished answers 202: the retry asks the provider again. (Other 202s
 * are final: a rebuild started is replayed with its Location, never started twice.)
 */
export const UNFINISHED_WHEN_ACCEPTED = '/v1/payments/:paymentId/refund';

/** A response worth replaying: not a server failure, not a conflict the client is told to retry, not a refund still in progress. */
function isFinal(status: number, body: string, routeUrl: string): boolean {
  if (status >= 500 || (status === 202 && routeUrl === UNFINISHED_WHEN_ACCEPTED)) return false;
  return !(status === 409 && RETRY_INVITED.some((code) => body.includes(code)));
}
