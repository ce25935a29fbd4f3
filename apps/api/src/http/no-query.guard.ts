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
 * but for the names class-transformer skips unseen, so that the whitelist never judges them: those
 * every object inherits (`INHERITED_NAMES`: `constructor`, `toString`, ...) and the query class's
 * own methods (`position`, `page`, `asOf`: `?page=3` was dropped and answered the first page).
 * Provider webhooks and health probes are left alone, as this service does not shape their callers.
 */
const NOT_OURS = /^\/(v1\/payments\/webhooks\/|health(\/|$))/;

/** Whether the guard judges the query string of the route at `url` (as Fastify or the OpenAPI document names it): all but webhooks and health probes. */
export function judgesQueryOf(url: string): boolean {
  return !NOT_OURS.test(url);
}

export class NoQueryGuard implements CanActivate {
  /** Per handler: its query class's methods, or undefined for a route that takes no query. */
  private readonly methods = new WeakMap<object, ReadonlySet<string> | undefined>();

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    // Requests this service does not shape: a provider's webhook (its endpoint URL is set in the
    // provider's dashboard, a query string included) and a load balancer's health probe.
    if (!judgesQueryOf(request.routeOptions.url ?? '')) return true;
    const query = request.query;
    const names = query !== null && typeof query === 'object' ? Object.keys(query) : [];
    if (names.length === 0) return true;
    const methods = this.queryMethodsOf(context);
    if (methods === undefined) {
      throw new RequestValidationError(names.map((name) => ({ field: name, rule: 'whitelistValidation', message: `query parameter ${name} should not exist: this route takes none` })));
    }
    // No query class declares a name every object inherits or one of its methods, and class-transformer would skip it unseen.
    const unseen = names.filter((name) => INHERITED_NAMES.has(name) || methods.has(name));
    if (unseen.length === 0) return true;
    throw new RequestValidationError(unseen.map((name) => ({ field: name, rule: 'whitelistValidation', message: `query parameter ${name} should not exist` })));
  }

  /** The names of the methods and accessors of the route's query class, up to Object's own; undefined when the route takes no query. */
  private queryMethodsOf(context: ExecutionContext): ReadonlySet<string> | undefined {
    const handler = context.getHandler();
    if (this.methods.has(handler)) return this.methods.get(handler);
    const parameters = (Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), handler.name) ?? {}) as Record<string, { readonly index: number }>;
    const query = Object.entries(parameters).find(([key]) => key.split(':')[0] === String(RouteParamtypes.QUERY));
    let methods: ReadonlySet<string> | undefined;
    if (query !== undefined) {
      const types = (Reflect.getMetadata('design:paramtypes', context.getClass().prototype as object, handler.name) ?? []) as unknown[];
      methods = memberFunctionsOf(types[query[1].index]);
    }
    this.methods.set(handler, methods);
    return methods;
  }
}

/** The names on a class's prototype chain, up to Object's own, whose property is a method or an accessor: never data a caller may send. */
export function memberFunctionsOf(type: unknown): ReadonlySet<string> {
  const names = new Set<string>();
  if (typeof type !== 'function') return names;
  for (let prototype: unknown = type.prototype; prototype !== null && prototype !== undefined && prototype !== Object.prototype; prototype = Object.getPrototypeOf(prototype)) {
    for (const name of Object.getOwnPropertyNames(prototype)) {
      const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
      if (name !== 'constructor' && descriptor !== undefined && (typeof descriptor.value === 'function' || descriptor.get !== undefined || descriptor.set !== undefined)) names.add(name);
    }
  }
  return names;
}
