import { AccessDeniedError, AuthenticationError, authorize, ENDPOINT_ACTIONS, KeySetUnavailableError, PERMISSIONS, type Actor, type ApiKeyRepository, type Endpoint, type JwtVerifier } from '@app/auth';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { sendProblem } from '../http/problem-details.filter.js';

export const API_KEY_HEADER = 'x-api-key';
const BEARER = /^Bearer ([\w-]+\.[\w-]*\.[\w-]*)$/i;

/**
 * Routes anyone may call: the health check, the OpenAPI document and UI, and the payment provider's
 * notifications (which carry their own HMAC signature, checked by WebhookSignatureGuard).
 */
const PUBLIC_ROUTES: readonly ((method: string, url: string) => boolean)[] = [
  (method, url) => isRead(method) && url === '/health',
  (method, url) => isRead(method) && (url === '/docs' || url === '/docs-json' || url.startsWith('/docs/')),
  (method, url) => method === 'POST' && url.startsWith('/v1/payments/webhooks/'),
];

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

/**
 * Authentication and authorization for every route, as two Fastify hooks registered before any
 * other request hook, so a refused request does nothing else (in particular it claims no
 * Idempotency-Key and reaches no validation):
 * - onRequest: a protected route needs `Authorization: Bearer <JWT>` or `X-API-Key`, not both;
 *   anything else is 401 with one public body (the reason goes to the log);
 * - preHandler: the route's action (ENDPOINT_ACTIONS, the table the README shows) and the owner of
 *   the resource decide; a refusal is 403 and says nothing about the resource.
 *
 * Every route must be classified: one that is neither in ENDPOINT_ACTIONS nor public stops the
 * application at start (onRoute), so a new endpoint cannot be open by omission.
 */
export function registerAccessControl(fastify: FastifyInstance, options: AccessControlOptions): void {
  const endpoints = new Map(ENDPOINT_ACTIONS.map((endpoint) => [routeKey(endpoint.method, toFastifyPath(endpoint.path)), endpoint]));
  const endpointOf = (request: FastifyRequest): Endpoint | undefined => {
    const url = request.routeOptions.url;
    return url === undefined ? undefined : endpoints.get(routeKey(request.method === 'HEAD' ? 'GET' : request.method, url));
  };

  fastify.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      const effective = method === 'HEAD' ? 'GET' : method;
      if (endpoints.has(routeKey(effective, route.url)) || PUBLIC_ROUTES.some((isPublic) => isPublic(effective, route.url))) continue;
      throw new Error(`route ${method} ${route.url} has no access rule: add it to ENDPOINT_ACTIONS (libs/auth/src/permissions.ts) or to the public routes`);
    }
  });

  fastify.addHook('onRequest', async (request, reply) => {
    if (endpointOf(request) === undefined) return undefined; // public, or no such route (404)
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
  });

  fastify.addHook('preHandler', async (request, reply) => {
    const endpoint = endpointOf(request);
    const actor = actors.get(request);
    if (endpoint === undefined) return undefined;
    if (actor === undefined) throw new Error(`no actor on protected route ${request.method} ${request.url}`);
    // The owner is looked up only when it decides: for an `own` grant.
    const owner = PERMISSIONS[endpoint.action][actor.role] === 'own' ? await ownerOf(endpoint, request, options) : undefined;
    const decision = authorize(actor, endpoint.action, owner);
    if (decision.allowed) return undefined;
    options.logger.info({ requestId: request.id, subject: actor.subject, role: actor.role, action: endpoint.action, reason: decision.reason }, 'authorization refused');
    return sendProblem(reply, request, new AccessDeniedError(`a ${actor.role} may not perform ${endpoint.action} here`));
  });
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
      // Not a UUID: no payment has it, and the validation that would say so runs after this check.
      return paymentId !== undefined && UUID.test(paymentId) ? options.paymentOwner(paymentId.toLowerCase()) : undefined;
    }
    case 'none':
      return undefined;
    default: {
      const unknown: never = endpoint.owner;
      throw new Error(`unknown owner kind ${String(unknown)}`);
    }
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
