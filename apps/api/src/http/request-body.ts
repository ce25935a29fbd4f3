import { isUtf8 } from 'node:buffer';
import { CodedError } from '@app/ledger';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RequestValidationError } from './request-validation.error.js';

export const REQUEST_BODY_ERROR_CODES = ['BODY_TOO_DEEP', 'BODY_NOT_UTF8', 'UNSUPPORTED_MEDIA_TYPE'] as const;

export type RequestBodyErrorCode = (typeof REQUEST_BODY_ERROR_CODES)[number];

/** How deeply objects and arrays may nest in a request body; no request of ours needs more than 3. */
export const JSON_NESTING_DEPTH_MAX = 32;

/** The only media type a request body may have. */
export const JSON_MEDIA_TYPE = 'application/json';

/** A body the service refuses before parsing it: not JSON, or JSON nested deeper than the limit. */
export class RequestBodyError extends CodedError<RequestBodyErrorCode> {
  override readonly name = 'RequestBodyError';
}

/**
 * True when the JSON text nests objects and arrays deeper than `depthMax`. One pass over the bytes
 * with a counter (no recursion, no parse): brackets inside strings do not count, and a backslash
 * escapes the next byte. Text that is not JSON is left for the parser to refuse; only its depth is
 * judged here.
 */
export function nestsDeeperThan(body: Buffer, depthMax: number): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < body.length; index += 1) {
    const byte = body[index];
    if (inString) {
      if (byte === BACKSLASH) index += 1;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      depth += 1;
      if (depth > depthMax) return true;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth -= 1;
    }
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

declare module 'fastify' {
  interface FastifyRequest {
    /** The exact bytes of a JSON body, for checks over what was sent (webhook signatures). */
    rawBody?: Buffer;
  }
}

/**
 * VALIDATION_FAILED naming the body when it is JSON but not an object, undefined when it is one. Every
 * route's body is an object; a route that takes none takes `{}` at most (EmptyBody). Judged here, once
 * for every route, because the ValidationPipe reads null as no body and a number, string, boolean or
 * array as an object without properties: a route without a body would accept them, and a route with
 * one would answer that its first field is required.
 */
export function notAnObject(value: unknown): RequestValidationError | undefined {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return undefined;
  const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
  return new RequestValidationError([{ field: 'body', rule: 'isObject', message: `body must be a JSON object, not ${kind}` }]);
}

/**
 * The service's only body parsers, in place of every parser Fastify and Nest bring (JSON, plain
 * text, url-encoded forms): `application/json` (with any parameters, such as a charset) is parsed
 * once its depth is checked, so nothing downstream (class-transformer, the Idempotency-Key body hash,
 * canonical JSON) ever walks a deep structure, and must be an object (`notAnObject`); any other media
 * type, or a body with none, is 415 UNSUPPORTED_MEDIA_TYPE naming the type. Register it before the
 * routes are added.
 */
export function registerRequestBodyParsers(fastify: FastifyInstance, depthMax: number = JSON_NESTING_DEPTH_MAX): void {
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(JSON_MEDIA_TYPE, { parseAs: 'buffer' }, (request: FastifyRequest, body: Buffer, done) => {
    if (nestsDeeperThan(body, depthMax)) {
      done(new RequestBodyError('BODY_TOO_DEEP', `the body nests objects and arrays deeper than ${depthMax} levels`, { depthMax }), undefined);
      return;
    }
    // JSON is UTF-8 (RFC 8259); bytes that are not would be read as replacement characters, silently.
    if (!isUtf8(body)) {
      done(new RequestBodyError('BODY_NOT_UTF8', 'the body is not valid UTF-8', {}), undefined);
      return;
    }
    request.rawBody = body;
    // Fastify's parser (secure-json-parse: refuses __proto__ and constructor.prototype keys) takes a Buffer too.
    void parseJson(request, body as unknown as string, (error, value: unknown) => {
      const refused = error ?? notAnObject(value);
      if (refused === undefined) done(null, value);
      else done(refused, undefined);
    });
  });
  fastify.addContentTypeParser('*', (request: FastifyRequest, _payload, done) => {
    const received = request.headers['content-type'] ?? '(none)';
    done(new RequestBodyError('UNSUPPORTED_MEDIA_TYPE', `a request body must be ${JSON_MEDIA_TYPE}, not ${received}`, { contentType: received, accepted: JSON_MEDIA_TYPE }), undefined);
  });
}
