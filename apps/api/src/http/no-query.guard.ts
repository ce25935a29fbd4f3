import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import type { FastifyRequest } from 'fastify';
import { INHERITED_NAMES } from './request-body.js';
import { RequestValidationError } from './request-validation.error.js';

/**
 * Refuses a query string on a route that takes none (400 VALIDATION_FAILED naming each parameter,
 * rule `whitelistValidation`), as the ValidationPipe refuses an unknown body property. The pipe
 * judges only the parameters a handler declares, so without this a route with no `@Query()` ignored
 * any: `POST /v1/payments/{id}/refund?amount=100` refunded the whole payment, and a hold's
 * `?expiresInSeconds=60` gave it the default time to live. Routes with a query class are left to it,
 * but for the names every object inherits (`INHERITED_NAMES`: `constructor`, `toString`, ...), which
 * class-transformer skips unseen; provider webhooks and health probes are left alone, as this
 * service does not shape their callers.
 */
const NOT_OURS = /^\/(v1\/payments\/webhooks\/|health(\/|$))/;

/** Whether the guard judges the query string of the route at `url` (as Fastify or the OpenAPI document names it): all but webhooks and health probes. */
export function judgesQueryOf(url: string): boolean {
  return !NOT_OURS.test(url);
}

export class NoQueryGuard implements CanActivate {
  private readonly takesQuery = new WeakMap<object, boolean>();

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    // Requests this service does not shape: a provider's webhook (its endpoint URL is set in the
    // provider's dashboard, a query string included) and a load balancer's health probe.
    if (!judgesQueryOf(request.routeOptions.url ?? '')) return true;
    const query = request.query;
    const names = query !== null && typeof query === 'object' ? Object.keys(query) : [];
    if (names.length === 0) return true;
    if (!this.declaresQuery(context)) {
      throw new RequestValidationError(names.map((name) => ({ field: name, rule: 'whitelistValidation', message: `query parameter ${name} should not exist: this route takes none` })));
    }
    // No query class declares a name every object inherits, and class-transformer would skip it unseen.
    const inherited = names.filter((name) => INHERITED_NAMES.has(name));
    if (inherited.length === 0) return true;
    throw new RequestValidationError(inherited.map((name) => ({ field: name, rule: 'whitelistValidation', message: `query parameter ${name} should not exist` })));
  }

  private declaresQuery(context: ExecutionContext): boolean {
    const handler = context.getHandler();
    const known = this.takesQuery.get(handler);
    if (known !== undefined) return known;
    const parameters = (Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), handler.name) ?? {}) as Record<string, unknown>;
    const declares = Object.keys(parameters).some((key) => key.split(':')[0] === String(RouteParamtypes.QUERY));
    this.takesQuery.set(handler, declares);
    return declares;
  }
}
