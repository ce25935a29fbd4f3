import { randomUUID } from 'node:crypto';
import { ValidationPipe, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ApiKeyRepository, callerName, JwtVerifier, type AuthSettings } from '@app/auth';
import { PaymentStreams } from '@app/event-sourcing';
import { AppModule } from './app.module.js';
import { actorOf, registerAccessControl } from './auth/access-control.js';
import type { AppConfig } from './config/app.config.js';
import { PinoNestLogger } from './http/pino-nest.logger.js';
import { PATH_PARAMETER_LENGTH_MAX, RoutePaths } from './http/path-parameters.js';
import { frameworkProblems, ProblemDetailsFilter } from './http/problem-details.filter.js';
import { NoQueryGuard } from './http/no-query.guard.js';
import { RequestValidationError } from './http/request-validation.error.js';
import { registerRateLimits } from './http/rate-limits.js';
import { registerRequestBodyParsers } from './http/request-body.js';
import { registerIdempotency } from './http/idempotency/idempotency.hooks.js';
import { loggableUrl } from './http/loggable-url.js';
import { IdempotencyStore } from './http/idempotency/idempotency.store.js';
import { corsOptionsOf } from './http/cors.js';
import { registerHttpMetrics } from './metrics/http-metrics.js';
import { readModelProbes } from './metrics/read-model-probes.js';
import { ServiceMetrics } from './metrics/service-metrics.js';
import { completeContract } from './openapi/contract.js';

export type CreateAppOptions = {
  readonly config: AppConfig;
  readonly databaseUrl: string;
  readonly logger: Logger;
  /** How callers are authenticated and bundles signed (resolveAuthSettings). */
  readonly auth: AuthSettings;
  /** The Swagger UI needs @fastify/static, which Jest's module system cannot load; tests keep the JSON only. */
  readonly openApiUi: boolean;
  /** Where the app's metrics go; a registry of its own when not given. The service serves it on METRICS_PORT (main.ts). */
  readonly metrics?: ServiceMetrics;
  /** The time the account's commands (tokens, holds, lots, payments) and jobs are decided at; the system's when not given. Tests set it to decide at an exact instant. */
  readonly clock?: () => Date;
};

const REQUEST_ID_PATTERN = /^[\w.:-]{1,128}$/;
const BODY_LIMIT_BYTES = 64 * 1024;
/**
 * Routes that take larger bodies. Stripe's events carry whole objects, and a dispute's carries the
 * merchant's evidence (up to 150,000 characters of text): refused 413 at 64 KiB, such an event would
 * be answered the same on every redelivery, and its dispute never recorded.
 */
const ROUTE_BODY_LIMITS_BYTES: Readonly<Record<string, number>> = { '/v1/payments/webhooks/stripe': 1024 * 1024 };
const IDEMPOTENCY_WAIT_MS_MAX = 10_000;
const IDEMPOTENCY_POLL_INTERVAL_MS = 20;

/** The whole HTTP application, configured the same way for the service and for the end-to-end tests. */
export async function createApp({ config, databaseUrl, logger, openApiUi, auth, metrics = new ServiceMetrics(), clock }: CreateAppOptions): Promise<NestFastifyApplication> {
  // The routes as they are added, for the refusal of a path parameter over the router's limit to name it.
  const routes = new RoutePaths();
  const adapter = new FastifyAdapter({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: PATH_PARAMETER_LENGTH_MAX },
    frameworkErrors: frameworkProblems(routes),
    genReqId: (request: { headers: Record<string, string | string[] | undefined> }) => {
      const header = request.headers['x-request-id'];
      return typeof header === 'string' && REQUEST_ID_PATTERN.test(header) ? header : randomUUID();
    },
  });
  // bodyParser: false: Nest would add a url-encoded form parser; the service parses JSON only, with
  // its own parser (registerRequestBodyParsers), which also keeps the raw bytes for webhook signatures.
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, databaseUrl, auth, metrics, clock), adapter, { logger: new PinoNestLogger(logger), bodyParser: false });

  const fastify = app.getHttpAdapter().getInstance();
  routes.follow(fastify);
  fastify.addHook('onRoute', (route) => {
    const bodyLimit = ROUTE_BODY_LIMITS_BYTES[route.url];
    if (bodyLimit !== undefined) route.bodyLimit = bodyLimit;
  });
  registerHttpMetrics(fastify, metrics);
  metrics.readFrom(readModelProbes(app));
  if (config.CORS_ORIGINS.length > 0) app.enableCors(corsOptionsOf(config.CORS_ORIGINS));
  registerRequestBodyParsers(fastify);
  // One structured line per request; no headers or bodies, so no credentials reach the log. The
  // caller it was authenticated as (`kind:subject`, role) makes it the record of who did what, for
  // the routes that write no event (API keys, rebuilds) as for those that do.
  fastify.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  fastify.addHook('onResponse', async (request: FastifyRequest, reply) => {
    const actor = actorOf(request);
    logger.info(
      {
        requestId: request.id,
        method: request.method,
        url: loggableUrl(request.url),
        statusCode: reply.statusCode,
        responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
        ...(actor === undefined ? {} : { caller: callerName(actor), role: actor.role }),
      },
      'request completed',
    );
  });

  // First of the request hooks: a refused request claims no Idempotency-Key and reaches no handler.
  registerAccessControl(fastify, {
    verifier: await JwtVerifier.create(auth.jwt),
    apiKeys: app.get(ApiKeyRepository),
    paymentOwner: (paymentId) => app.get(PaymentStreams).userOf(paymentId),
    logger,
  });
  // After the access control: the address limit goes ahead of authentication, the credential limit after it.
  if (config.RATE_LIMIT_ENABLED) {
    await registerRateLimits(fastify, { windowSeconds: config.RATE_LIMIT_WINDOW_SECONDS, perIpMax: config.RATE_LIMIT_PER_IP_MAX, perCredentialMax: config.RATE_LIMIT_PER_CREDENTIAL_MAX });
  }
  registerIdempotency(fastify, app.get(IdempotencyStore), { waitMsMax: IDEMPOTENCY_WAIT_MS_MAX, pollIntervalMs: IDEMPOTENCY_POLL_INTERVAL_MS });

  app.enableVersioning({ type: VersioningType.URI });
  app.useGlobalFilters(new ProblemDetailsFilter(logger));
  app.useGlobalGuards(new NoQueryGuard());
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      // The value tells a missing property from a wrong one (RequestValidationError); it is never sent back.
      validationError: { target: false, value: true },
      exceptionFactory: (errors) => RequestValidationError.fromValidationErrors(errors),
    }),
  );

  // completeContract adds what the hooks and tables decide (problems, Idempotency-Key, public routes): see ADR 0025.
  const document = completeContract(SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Token Ledger')
      .setDescription('Event-sourced token (prepaid credits) ledger. Errors are RFC 9457 problem details with a stable `code`.')
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
      .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key' }, 'apiKey')
      .addSecurityRequirements('bearer')
      .addSecurityRequirements('apiKey')
      .build(),
  ));
  SwaggerModule.setup('docs', app, document, { ui: openApiUi, raw: ['json'], jsonDocumentUrl: 'docs-json' });
  return app;
}
