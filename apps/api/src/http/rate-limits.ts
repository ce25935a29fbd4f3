import rateLimit from '@fastify/rate-limit';
import { CodedError } from '@app/ledger';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { callerName } from '@app/auth';
import { actorOf } from '../auth/access-control.js';
import { sendProblem } from './problem-details.filter.js';
import { withHook } from './route-hooks.js';

export const RATE_LIMIT_ERROR_CODES = ['RATE_LIMITED'] as const;

export type RateLimitErrorCode = (typeof RATE_LIMIT_ERROR_CODES)[number];

export type RateLimitOptions = {
  /** The length of one counting window. */
  readonly windowSeconds: number;
  /** Requests one client address may make in a window, on every route. */
  readonly perIpMax: number;
  /** Requests one credential (a JWT subject, an API key) may make in a window, on protected routes. */
  readonly perCredentialMax: number;
};

/** Too many requests in the window, from this address or with this credential (429 with Retry-After). */
export class RateLimitedError extends CodedError<RateLimitErrorCode> {
  override readonly name = 'RateLimitedError';
}

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

/**
 * Two fixed-window limits, counted in this process (@fastify/rate-limit's in-memory store), each
 * bound to every route when it is added:
 * - per client address, the first onRequest hook: before authentication, so a flood of guessed
 *   credentials is limited too, and before the body is read;
 * - per credential, the last onRequest hook, after authentication (access control): keyed by the
 *   verified actor, never by anything a caller could claim for another.
 * A request over either limit is 429 RATE_LIMITED with `Retry-After` and does nothing else; the
 * health probes are not limited (`isHealthProbe`). Register after the access control, so the address
 * limit runs first and the credential limit after it.
 */
export async function registerRateLimits(fastify: FastifyInstance, options: RateLimitOptions): Promise<void> {
  await fastify.register(rateLimit, { global: false });
  const timeWindow = options.windowSeconds * 1_000;
  const byAddress = fastify.createRateLimit({ max: options.perIpMax, timeWindow, keyGenerator: (request) => request.ip });
  const byCredential = fastify.createRateLimit({
    max: options.perCredentialMax,
    timeWindow,
    keyGenerator: (request) => {
      const actor = actorOf(request);
      return actor === undefined ? '' : callerName(actor);
    },
  });
  const addressHook = limitHook(byAddress, 'address', () => true);
  const credentialHook = limitHook(byCredential, 'credential', (request) => actorOf(request) !== undefined);
  fastify.addHook('onRoute', (route) => {
    if (isHealthProbe(route.url)) return;
    route.onRequest = withHook(withHook(route.onRequest, addressHook, 'first'), credentialHook, 'last');
  });
}

/**
 * The health routes are not limited: an orchestrator's probe that met a client's 429 (they may share
 * an address, behind a proxy) would restart a healthy process or take it out of service. They take
 * no credential and no body, and write nothing.
 */
export function isHealthProbe(url: string): boolean {
  return url === '/health' || url.startsWith('/health/');
}

function limitHook(limiter: Limiter, limit: 'address' | 'credential', applies: (request: FastifyRequest) => boolean): onRequestAsyncHookHandler {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (!applies(request)) return undefined;
    const outcome = await limiter(request);
    if (outcome.isAllowed || !outcome.isExceeded) return undefined;
    const retryAfterSeconds = Math.max(1, outcome.ttlInSeconds);
    void reply.header('retry-after', String(retryAfterSeconds));
    return sendProblem(
      reply,
      request,
      new RateLimitedError('RATE_LIMITED', `more than ${outcome.max} requests in ${outcome.timeWindow / 1_000} s from this ${limit}; retry after ${retryAfterSeconds} s`, {
        limit,
        max: outcome.max,
        windowSeconds: outcome.timeWindow / 1_000,
        retryAfterSeconds,
      }),
    );
  };
}
