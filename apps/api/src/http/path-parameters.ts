import type { FastifyInstance } from 'fastify';
import { RequestValidationError } from './request-validation.error.js';

/** The longest value a path parameter may have: Fastify's router refuses a longer one before any route runs. */
export const PATH_PARAMETER_LENGTH_MAX = 100;

/** A route's method and path as Fastify names it, cut at its slashes: `GET`, `['', 'v1', 'accounts', ':userId', 'balance']`. */
export type RoutePath = { readonly method: string; readonly segments: readonly string[] };

/**
 * The paths of the routes, gathered as Fastify adds them, so that a refusal its router makes before
 * any route is chosen (a path parameter over PATH_PARAMETER_LENGTH_MAX, a path that is not valid
 * percent-encoding) can name the parameter.
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

  /**
   * VALIDATION_FAILED for a path the router cannot decode, naming the parameter whose value is not
   * valid percent-encoding (see `badlyEncodedParameterOf`), or `path` when no route fits: a path that
   * cannot be read cannot be said to be one no route has.
   */
  badlyEncoded(method: string, url: string): RequestValidationError {
    const field = badlyEncodedParameterOf(method, url, this.paths) ?? 'path';
    return new RequestValidationError([{ field, rule: 'percentEncoding', message: `${field} must be valid percent-encoded UTF-8: each % followed by two hex digits, the bytes they give UTF-8` }]);
  }
}

/**
 * The name of the parameter longer than `lengthMax` characters (decoded, as the router measures it)
 * in the first route whose path fits the URL's, or undefined when none fits (a path no route has).
 * A HEAD request fits its GET route.
 */
export function tooLongParameterOf(method: string, url: string, paths: Iterable<RoutePath>, lengthMax: number): string | undefined {
  return parameterRefused(method, url, paths, (value) => (decoded(value) ?? value).length > lengthMax);
}

/**
 * The name of the parameter whose value is not valid percent-encoding (a % without two hex digits,
 * or escapes that do not spell UTF-8) in the first route whose path fits the URL's, or undefined
 * when none fits.
 */
export function badlyEncodedParameterOf(method: string, url: string, paths: Iterable<RoutePath>): string | undefined {
  return parameterRefused(method, url, paths, (value) => decoded(value) === undefined);
}

/** The first parameter whose raw value `refuses`, in the first route whose path fits the URL's that has one. */
function parameterRefused(method: string, url: string, paths: Iterable<RoutePath>, refuses: (value: string) => boolean): string | undefined {
  const segments = (url.split('?', 1)[0] ?? '').split('/');
  for (const path of paths) {
    if (path.method !== method && !(method === 'HEAD' && path.method === 'GET')) continue;
    const fits = path.segments.length === segments.length && path.segments.every((segment, index) => (isParameter(segment) ? segments[index] !== '' : segment === segments[index]));
    if (!fits) continue;
    const refused = path.segments.find((segment, index) => isParameter(segment) && refuses(segments[index] ?? ''));
    if (refused !== undefined) return refused.slice(1);
  }
  return undefined;
}

function isParameter(segment: string): boolean {
  return segment.startsWith(':');
}

/** The value decoded as the router decodes it, or undefined when it is not valid percent-encoding. */
function decoded(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}
