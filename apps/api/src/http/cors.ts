import type { NestFastifyApplication } from '@nestjs/platform-fastify';

/** @fastify/cors's options, as Nest's FastifyAdapter takes them (the plugin is its dependency, not ours). */
type CorsOptions = NonNullable<Parameters<NestFastifyApplication['enableCors']>[0]>;

/** What a browser may send and read cross-origin: the credentials, the retry key and the correlation id; the request id, when to retry, where a 202's work is, and whether an answer is a replay. */
const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-API-Key', 'X-Correlation-Id', 'X-Request-Id'];
const EXPOSED_HEADERS = ['X-Request-Id', 'Retry-After', 'Location', 'Idempotent-Replayed'];
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * CORS for the origins of CORS_ORIGINS only (exact matches): a preflight from one of them is answered
 * with the Access-Control-Allow-* headers; from any other origin without them, so the browser refuses.
 * Credentials travel in headers (a bearer token, an API key), never cookies, so none are allowed.
 */
export function corsOptionsOf(origins: readonly string[]): CorsOptions {
  return {
    origin: [...origins],
    methods: ['GET', 'HEAD', 'POST', 'DELETE'],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    credentials: false,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
  };
}
