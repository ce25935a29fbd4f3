import { AccessDeniedError, AuthenticationError, authorize, ENDPOINT_ACTIONS, KeySetUnavailableError, PERMISSIONS, type Actor, type ApiKeyRepository, type Endpoint, type JwtVerifier, type Role } from '@app/auth';
import { isUUID } from 'class-validator';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler, preHandlerAsyncHookHandler, preParsingAsyncHookHandler } from 'fastify';
import type { Logger } from 'pino';
import { sendProblem } from '../http/problem-details.filter.js';
import { RequestValidationError, type FieldViolation } from '../http/request-validation.error.js';
import { withHook } from '../http/route-hooks.js';

export const API_KEY_HEADER = 'x-api-key';
const BEARER = /^Bearer ([\w-]+\.[\w-]*\.[\w-]*)$/i;

/**
 * Routes anyone may call: the health check, the OpenAPI document and UI, the token packages on sale
 * (a pricing page needs no credentials), and the payment providers' notifications (which carry their
 * own signature, checked by WebhookSignatureGuard or the Stripe SDK).
 */
const PUBLIC_ROUTES: readonly ((method: string, url: string) => boolean)[] = [
  (method, url) => isRead(method) && (url === '/health' || url === '/health/live' || url === '/health/ready'),
  // The CORS preflight (CORS_ORIGINS): it carries no credentials by design, and @fastify/cors answers it.
  (method, url) => method === 'OPTIONS' && url === '*',
  (method, url) => isRead(method) && (url === '/docs' || url === '/docs-json' || url.startsWith('/docs/')),
  (method, url) => isRead(method) && url === '/v1/packages',
  (method, url) => method === 'POST' && url.startsWith('/v1/payments/webhooks/'),
];

/** Whether anyone may call the route (method, and URL as Fastify or the OpenAPI document names it). */
export function isPublicRoute(method: string, url: string): boolean {
  return PUBLIC_ROUTES.some((isPublic) => isPublic(method.toUpperCase(), url));
}

export type AccessControlOptions = {
  readonly verifier: JwtVerifier;
  readonly apiKeys: ApiKeyRepository;
  /** The user a payment belongs to (payment_streams), for `own` grants on payment routes. */
  readonly paymentOwner: (paymentId: string) => Promise<string | undefined>;
  readonly logger: Logger;
};

const actors = new WeakMap<FastifyRequest, Actor>();

/** The authenticated caller of a request on a protected route (set by the access-control hooks). */
export function actorOf(request: FastifyRequest): Actor | undefined {
  return actors.get(request);
}

/** A route's methods, with the endpoint each is (undefined: public), as classified when the route was added. */
type RouteEndpoints = ReadonlyMap<string, Endpoint | undefined>;

/**
 * Authentication and authorization for every route, as two hooks bound to each protected route
 * when it is added, ahead of its other request hooks, so a refused request does nothing else (in
 * particular it claims no Idempotency-Key and reaches no validation):
 * - onRequest: a protected route needs `Authorization: Bearer <JWT>` or `X-API-Key`, not both;
 *   anything else is 401 with one public body (the reason goes to the log);
 * - preParsing (after every onRequest hook, the per-credential rate limit included, and before the
 *   body is read): the route's action (ENDPOINT_ACTIONS, the table the README shows) and the owner
 *   of the resource decide; a refusal is 403 and says nothing about the resource or the body's
 *   rules, except that a user refused only because the owner's id is missing or not a UUID gets the
 *   400 naming it that validation would give a caller allowed the action (ADR 0011);
 * - preHandler: the one decision that needs the body, an `own` grant on a route whose owner is the
 *   body's `userId` (`needsBody`), once the body is parsed.
 * The route table is read once per route, at start, not on every request; public routes get no hook.
 * A global preHandler would run before the bound ones, so none may be added that acts for a caller.
 *
 * Every route must be classified: one that is neither in ENDPOINT_ACTIONS nor public stops the
 * application at start (onRoute), and so does a listed route that was added without passing the
 * onRoute hook (onReady), so a new endpoint cannot be open by omission.
 */
export function registerAccessControl(fastify: FastifyInstance, options: AccessControlOptions): void {
  const endpoints = new Map(ENDPOINT_ACTIONS.map((endpoint) => [routeKey(endpoint.method, toFastifyPath(endpoint.path)), endpoint]));
  const bound = new Set<Endpoint>();

  fastify.addHook('onRoute', (route) => {
    const byMethod = classify(route.method, route.url, endpoints);
    const protectedEndpoints = [...byMethod.values()].filter((endpoint) => endpoint !== undefined);
    if (protectedEndpoints.length === 0) return;
    for (const endpoint of protectedEndpoints) bound.add(endpoint);
    route.onRequest = withHook(route.onRequest, authenticationHook(byMethod, options), 'first');
    route.preParsing = withHook(route.preParsing, authorizationHook(byMethod, options), 'first');
    route.preHandler = withHook(route.preHandler, bodyOwnerHook(byMethod, options), 'first');
  });

  fastify.addHook('onReady', (done) => {
    const unbound = ENDPOINT_ACTIONS.find((endpoint) => fastify.hasRoute({ method: endpoint.method, url: toFastifyPath(endpoint.path) }) && !bound.has(endpoint));
    done(unbound === undefined ? undefined : new Error(`route ${unbound.method} ${toFastifyPath(unbound.path)} was added without its access hooks: register the access control before the routes`));
  });
}

/** Each method of a route with its endpoint (undefined: public); throws for a method with no rule. */
function classify(method: string | readonly string[], url: string, endpoints: ReadonlyMap<string, Endpoint>): RouteEndpoints {
  const byMethod = new Map<string, Endpoint | undefined>();
  for (const each of typeof method === 'string' ? [method] : method) {
    const effective = each === 'HEAD' ? 'GET' : each;
    const endpoint = endpoints.get(routeKey(effective, url));
    if (endpoint === undefined && !isPublicRoute(effective, url)) {
      throw new Error(`route ${each} ${url} has no access rule: add it to ENDPOINT_ACTIONS (libs/auth/src/permissions.ts) or to the public routes`);
    }
    byMethod.set(each, endpoint);
  }
  return byMethod;
}

function authenticationHook(byMethod: RouteEndpoints, options: AccessControlOptions): onRequestAsyncHookHandler {
  return async (request, reply) => {
    if (byMethod.get(request.method) === undefined) return undefined; // a public method of a route with a protected one
    try {
      actors.set(request, await authenticate(request, options));
      return undefined;
    } catch (error) {
      if (error instanceof AuthenticationError) {
        options.logger.info({ requestId: request.id, reason: error.code }, 'authentication refused');
        void reply.header('www-authenticate', `Bearer realm="token-ledger"${error.code === 'CREDENTIALS_MISSING' ? '' : ', error="invalid_token"'}`);
        return sendProblem(reply, request, error);
      }
      if (error instanceof KeySetUnavailableError) {
        options.logger.error({ requestId: request.id, err: error }, 'the JWKS could not be read');
        return sendProblem(reply, request, error);
      }
      throw error;
    }
  };
}

/** Authorization before the body is read, unless the decision needs it (`needsBody`). The payload stream is left as it is. */
function authorizationHook(byMethod: RouteEndpoints, options: AccessControlOptions): preParsingAsyncHookHandler {
  return async (request, reply) => {
    const caller = callerOf(byMethod, request);
    if (caller !== undefined && !needsBody(caller.endpoint, caller.actor)) await authorizeRequest(caller.endpoint, caller.actor, request, reply, options);
    return undefined;
  };
}

/** The protected endpoint the request calls and its authenticated caller; undefined for a public method of a route with a protected one. */
function callerOf(byMethod: RouteEndpoints, request: FastifyRequest): { readonly endpoint: Endpoint; readonly actor: Actor } | undefined {
  const endpoint = byMethod.get(request.method);
  if (endpoint === undefined) return undefined;
  const actor = actors.get(request);
  if (actor === undefined) throw new Error(`no actor on protected route ${request.method} ${request.url}`);
  return { endpoint, actor };
}

/**
 * Whether the decision needs the parsed body: an `own` grant on a route whose owner is the body's
 * `userId`. Every other decision is made before the body is read, so a caller refused the action
 * learns nothing about the body's rules (a malformed body is still 400 to a caller allowed it).
 */
function needsBody(endpoint: Endpoint, actor: Actor): boolean {
  return endpoint.owner === 'body:userId' && PERMISSIONS[endpoint.action][actor.role] === 'own';
}

/** The decisions `needsBody` leaves until the body is parsed. */
function bodyOwnerHook(byMethod: RouteEndpoints, options: AccessControlOptions): preHandlerAsyncHookHandler {
  return async (request, reply) => {
    const caller = callerOf(byMethod, request);
    return caller !== undefined && needsBody(caller.endpoint, caller.actor) ? authorizeRequest(caller.endpoint, caller.actor, request, reply, options) : undefined;
  };
}

/** The indefinite article of each role, as a refusal names it ("an auditor", "a user"). */
const ROLE_ARTICLES: Readonly<Record<Role, 'a' | 'an'>> = { user: 'a', service: 'a', auditor: 'an', admin: 'an' };

/** The route's action and the resource's owner decide: undefined when allowed, else the refusal sent. */
async function authorizeRequest(endpoint: Endpoint, actor: Actor, request: FastifyRequest, reply: FastifyReply, options: AccessControlOptions): Promise<FastifyReply | undefined> {
  // The owner is looked up only when it decides: for an `own` grant.
  const owner = PERMISSIONS[endpoint.action][actor.role] === 'own' ? await ownerOf(endpoint, request, options) : undefined;
  const decision = authorize(actor, endpoint.action, owner);
  if (decision.allowed) return undefined;
  // A malformed id is no one's account or payment: 400 naming it, as validation answers every other
  // role, rather than a 403 that would not say what is wrong. Answered here, by the test the routes'
  // validation applies, so the request still goes no further.
  const malformed = decision.reason === 'NOT_OWNER' ? malformedOwnerId(endpoint, request) : undefined;
  if (malformed !== undefined) return sendProblem(reply, request, new RequestValidationError([malformed]));
  options.logger.info({ requestId: request.id, subject: actor.subject, role: actor.role, action: endpoint.action, reason: decision.reason }, 'authorization refused');
  if (decision.reason === 'SCOPE_MISSING') {
    return sendProblem(reply, request, new AccessDeniedError(`this API key lacks the scope ${decision.scope}, which ${endpoint.action} needs`, { missingScope: decision.scope }));
  }
  return sendProblem(reply, request, new AccessDeniedError(`${ROLE_ARTICLES[actor.role]} ${actor.role} may not perform ${endpoint.action} here`));
}

async function authenticate(request: FastifyRequest, options: AccessControlOptions): Promise<Actor> {
  const authorization = request.headers.authorization;
  const apiKey = request.headers[API_KEY_HEADER];
  if (authorization !== undefined && apiKey !== undefined) throw new AuthenticationError('CREDENTIALS_AMBIGUOUS', 'both Authorization and X-API-Key were sent');
  if (apiKey !== undefined) {
    if (typeof apiKey !== 'string') throw new AuthenticationError('API_KEY_INVALID', 'more than one X-API-Key header');
    return options.apiKeys.authenticate(apiKey);
  }
  if (authorization === undefined) throw new AuthenticationError('CREDENTIALS_MISSING', 'no credentials');
  const token = BEARER.exec(authorization)?.[1];
  if (token === undefined) throw new AuthenticationError('TOKEN_MALFORMED', 'Authorization is not "Bearer <JWT>"');
  return options.verifier.verify(token);
}

async function ownerOf(endpoint: Endpoint, request: FastifyRequest, options: AccessControlOptions): Promise<string | undefined> {
  switch (endpoint.owner) {
    case 'path:userId':
      return stringField(request.params, 'userId');
    case 'body:userId':
      return stringField(request.body, 'userId');
    case 'payment': {
      const paymentId = stringField(request.params, 'paymentId');
      // Not a UUID: no payment has it (the refusal then names it: malformedOwnerId).
      return paymentId !== undefined && isUUID(paymentId, 'loose') ? options.paymentOwner(paymentId.toLowerCase()) : undefined;
    }
    case 'none':
      return undefined;
    default: {
      const unknown: never = endpoint.owner;
      throw new Error(`unknown owner kind ${String(unknown)}`);
    }
  }
}

/** The violation of the id that names the owner (the user id, or the payment id), when it is not a UUID as the routes' validation (IsCanonicalUuid) requires. */
function malformedOwnerId(endpoint: Endpoint, request: FastifyRequest): FieldViolation | undefined {
  const [source, field] = endpoint.owner === 'path:userId' ? [request.params, 'userId'] : endpoint.owner === 'body:userId' ? [request.body, 'userId'] : endpoint.owner === 'payment' ? [request.params, 'paymentId'] : [undefined, ''];
  if (source === undefined) return undefined;
  const value = typeof source === 'object' && source !== null ? (source as Record<string, unknown>)[field] : undefined;
  if (value === undefined || value === null) return { field, rule: 'isDefined', message: `${field} is required` };
  return typeof value === 'string' && isUUID(value, 'loose') ? undefined : { field, rule: 'isUuid', message: `${field} must be a UUID` };
}

function stringField(value: unknown, field: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const found = (value as Record<string, unknown>)[field];
  return typeof found === 'string' ? found : undefined;
}

/** `/v1/accounts/{userId}/balance` -> `/v1/accounts/:userId/balance`, as Fastify names the route. */
export function toFastifyPath(path: string): string {
  return path.replace(/\{(\w+)\}/g, ':$1');
}

function routeKey(method: string, url: string): string {
  return `${method} ${url}`;
}

function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}
