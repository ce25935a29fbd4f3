import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServiceMetrics } from './service-metrics.js';

/** The label of a request that matched no route: its URL would make one series per probe of a scanner. */
export const UNMATCHED_ROUTE = 'unmatched';
const WEBHOOK_ROUTE = /^\/v1\/payments\/webhooks\/([a-z]+)$/;
const COMMAND_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The problem code of each refused request, read from its problem body as it is sent. */
const problemCodes = new WeakMap<FastifyRequest, string>();

/**
 * Counts every request: latency by route template (never the raw URL, whose ids would make a series
 * per user) and status; commands (POST/PUT/PATCH/DELETE) and webhooks by outcome, `ok` or the code of
 * the problem they were answered with. Every problem (a filter's, an access hook's, Fastify's own)
 * leaves as application/problem+json with a `code`, so the code is read from there, in one place.
 */
export function registerHttpMetrics(fastify: FastifyInstance, metrics: ServiceMetrics): void {
  fastify.addHook('onSend', async (request, reply, payload) => {
    const contentType = reply.getHeader('content-type');
    if (typeof contentType === 'string' && contentType.startsWith('application/problem+json') && typeof payload === 'string') {
      problemCodes.set(request, codeOf(payload));
    }
    return payload;
  });
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const statusCode = reply.statusCode;
    metrics.httpRequestDuration.observe({ method: request.method, route, status_code: String(statusCode) }, reply.elapsedTime / 1_000);
    const outcome = statusCode < 400 ? 'ok' : (problemCodes.get(request) ?? `HTTP_${statusCode}`);
    const webhook = WEBHOOK_ROUTE.exec(route);
    if (webhook !== null) metrics.webhooks.inc({ provider: webhook[1] ?? '', outcome });
    else if (COMMAND_METHODS.has(request.method) && route !== UNMATCHED_ROUTE) metrics.commandOutcomes.inc({ route, outcome });
  });
}

function codeOf(payload: string): string {
  try {
    const code = (JSON.parse(payload) as { code?: unknown }).code;
    return typeof code === 'string' ? code : 'UNKNOWN';
  } catch {
    return 'UNKNOWN';
  }
}
