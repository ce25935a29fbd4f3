import type { FastifyInstance } from 'fastify';
import { RequestValidationError } from './request-validation.error.js';

/** The longest value a path parameter may have: Fastify's router refuses a longer one before any route runs. */
export const PATH_PARAMETER_LENGTH_MAX = 100;

/** A route's method and path as Fastify names it, cut at its slashes: `GET`, `['', 'v1', 'accounts', ':userId', 'balance']`. */
export type RoutePath = { readonly method: string; readonly segments: readonly string[] };

/**
 * The paths of the routes, gathered as Fastify adds them, so that a refusal its router makes before
 * any route is chosen (a path parameter over PATH_PARAMETER_LENGTH_MAX) can name the parameter.
 */
export class RoutePaths {
  private readonly paths: RoutePath[] = [];

  /** Gathers the routes added from now on: call it before the application registers them. */
  follow(fastify: FastifyInstance): void {
    fastify.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) this.paths.push({ method, segments: route.url.split('/') });
    });
  }

  /** VALIDATION_FAILED naming the parameter too long (see `tooLongParameterOf`), or undefined when no route has this path. */
  tooLongParameter(method: string, url: string): RequestValidationError | undefined {
    const field = tooLongParameterOf(method, url, this.paths, PATH_PARAMETER_LENGTH_MAX);
    if (field === undefined) return undefined;
    return new RequestValidationError([{ field, rule: 'maxLength', message: `${field} must be shorter than or equal to ${PATH_PARAMETER_LENGTH_MAX} characters` }]);
  }
}

/**
 * The name of the parameter longer than `lengthMax` characters (decoded, as the router measures it)
 * in the first route whose path fits the URL's, or undefined when none fits (a path no route has).
 * A HEAD request fits its GET route.
 */
export function tooLongParameterOf(method: string, url: string, paths: Iterable<RoutePath>, lengthMax: number): string | undefined {
  const segments = (url.split('?', 1)[0] ?? '').split('/');
  for (const path of paths) {
    if (path.method !== method && !(method === 'HEAD' && path.method === 'GET')) continue;
    const fits = path.segments.length === segments.length && path.segments.every((segment, index) => (isParameter(segment) ? segments[index] !== '' : segment === segments[index]));
    if (!fits) continue;
    const tooLong = path.segments.find((segment, index) => isParameter(segment) && decoded(segments[index] ?? '').length > lengthMax);
    if (tooLong !== undefined) return tooLong.slice(1);
  }
  return undefined;
}

function isParameter(segment: string): boolean {
  return segment.startsWith(':');
}

function decoded(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
