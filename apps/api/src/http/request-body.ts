import { isUtf8 } from 'node:buffer';
import { CodedError } from '@app/ledger';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parse as parseJsonc, printParseErrorCode, visit as visitJson, type ParseError } from 'jsonc-parser';
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

/**
 * How many property names the JSON text holds, in every object: strings followed (after any
 * whitespace) by a colon, outside strings. Compared with the parsed value's (`propertyNamesIn`), a
 * larger count means a name repeated in one object, which JSON.parse settles silently for the last.
 */
export function propertyNamesInText(body: Buffer): number {
  let names = 0;
  let inString = false;
  let afterString = false;
  for (let index = 0; index < body.length; index += 1) {
    const byte = body[index];
    if (inString) {
      if (byte === BACKSLASH) index += 1;
      else if (byte === QUOTE) {
        inString = false;
        afterString = true;
      }
    } else if (byte === SPACE || byte === TAB || byte === LINE_FEED || byte === CARRIAGE_RETURN) {
      continue;
    } else {
      if (afterString && byte === COLON) names += 1;
      afterString = false;
      if (byte === QUOTE) inString = true;
    }
  }
  return names;
}

/** How many property names a parsed JSON value holds, in every object (its depth is bounded: `nestsDeeperThan`). */
export function propertyNamesIn(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + propertyNamesIn(item), 0);
  if (typeof value !== 'object' || value === null) return 0;
  let names = 0;
  for (const item of Object.values(value)) names += 1 + propertyNamesIn(item);
  return names;
}

/**
 * VALIDATION_FAILED naming the body when a parsed JSON object is not what the client meant for sure:
 * not an object at all (`notAnObject`), or with a property name twice in one object (which value
 * counts would be the parser's guess; RFC 8259 leaves it open).
 */
function ambiguous(body: Buffer, value: unknown): RequestValidationError | undefined {
  const notObject = notAnObject(value);
  if (notObject !== undefined) return notObject;
  if (propertyNamesInText(body) === propertyNamesIn(value)) return undefined;
  return new RequestValidationError([{ field: 'body', rule: 'uniquePropertyNames', message: 'body names a property twice in one object: each name may appear once' }]);
}

/**
 * Names every JavaScript object inherits (`Object.prototype`'s own: `constructor`, `toString`,
 * `valueOf`, `hasOwnProperty`, `__proto__`, ...). class-transformer skips a plain object's property
 * of such a name, so the whitelist never saw one and a caller's `metadata.valueOf` was dropped from
 * the event without a word; the body and the query string may not use them.
 */
export const INHERITED_NAMES: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/**
 * VALIDATION_FAILED naming the first property, at any depth, whose name an object inherits
 * (`INHERITED_NAMES`), by its path (`metadata.valueOf`, `items[0].toString`), rule `noPrototypeKeys`.
 */
export function inheritedNameIn(value: unknown, path = ''): RequestValidationError | undefined {
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = inheritedNameIn(item, `${path}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [name, item] of Object.entries(value)) {
    const field = path === '' ? name : `${path}.${name}`;
    if (INHERITED_NAMES.has(name)) {
      return new RequestValidationError([{ field, rule: 'noPrototypeKeys', message: `${field} may not be sent: ${name} is a name every JavaScript object has, and may not name a property` }]);
    }
    const found = inheritedNameIn(item, field);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The first number literal of the JSON text that a double cannot hold as written, and that the
 * parser would therefore change without a word: an integer no double is (9007199254740993 reads as
 * ...992), or a literal that is not an integer but reads as one (0.99999999999999999 reads as 1, so
 * an `amount` rule would take it). An integer a double is exactly, however large, is left to the
 * range rules. A fraction that reads as a fraction is left to the rules that
 * judge it; an integer written `1.0` or `1e3` is exact. One pass over the bytes outside strings.
 */
export function inexactNumberIn(body: Buffer): { readonly literal: string; readonly offset: number } | undefined {
  let inString = false;
  for (let index = 0; index < body.length; index += 1) {
    const byte = body[index] ?? 0;
    if (inString) {
      if (byte === BACKSLASH) index += 1;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === MINUS || (byte >= DIGIT_0 && byte <= DIGIT_9)) {
      let end = index + 1;
      while (end < body.length && NUMBER_BYTES.has(body[end] ?? 0)) end += 1;
      const literal = body.toString('latin1', index, end);
      if (!isExactNumber(literal)) return { literal, offset: index };
      index = end - 1;
    }
  }
  return undefined;
}

const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const NUMBER_BYTES: ReadonlySet<number> = new Set([...'0123456789+-.eE'].map((char) => char.charCodeAt(0)));
const JSON_NUMBER = /^-?(0|[1-9][0-9]*)(\.([0-9]+))?([eE]([+-]?[0-9]+))?$/;

function isExactNumber(literal: string): boolean {
  const parts = JSON_NUMBER.exec(literal);
  // Not a JSON number: the parser refuses it, with its own message.
  if (parts === null) return true;
  const value = Number(literal);
  if (!Number.isInteger(value)) return true;
  // Reads as an integer: so must the literal be (its digits past the point, after the exponent, all
  // zero), and that very integer (past 2^53 not every one is a double).
  const fraction = parts[3] ?? '';
  const exponent = Number(parts[5] ?? '0');
  const digits = `${parts[1] ?? ''}${fraction}`;
  // Zero, however it is written (`0e401`, `0.000e-999`), is exactly zero: the digit cap below is for values.
  if (/^0*$/.test(digits)) return true;
  const scale = exponent - fraction.length;
  const kept = scale >= 0 ? digits : digits.slice(0, Math.max(0, digits.length + scale));
  if (scale < 0 && !/^0*$/.test(digits.slice(kept.length))) return false;
  // A literal of more than 400 digits is no amount anyone meant; the parser makes it Infinity anyway.
  if (kept.length + Math.max(0, scale) > 400) return false;
  const written = BigInt(kept === '' ? '0' : kept) * 10n ** BigInt(Math.max(0, scale));
  return written === BigInt(Math.abs(value));
}

/** VALIDATION_FAILED naming the property whose number the parser would change (`exactNumbers`), found by its offset. */
function inexact(body: Buffer): RequestValidationError | undefined {
  const found = inexactNumberIn(body);
  if (found === undefined) return undefined;
  const text = body.toString('utf8');
  // The scan counts bytes, the visitor UTF-16 units: converted once (the bytes before a number are whole characters).
  const characterOffset = body.subarray(0, found.offset).toString('utf8').length;
  let field = 'body';
  visitJson(text, {
    onLiteralValue: (_value, offset, _length, _line, _character, pathSupplier) => {
      if (offset === characterOffset) field = pathSupplier().map(String).join('.') || 'body';
    },
  });
  return new RequestValidationError([
    { field, rule: 'exactNumbers', message: `${field} is ${found.literal}, which a number cannot hold exactly (it would read as another integer)` },
  ]);
}

const QUOTE = 0x22;
const COLON = 0x3a;
const SPACE = 0x20;
const TAB = 0x09;
const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;
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
 * Why the parser refused the body, as a rule of the body. Valid JSON that secure-json-parse refused
 * for a `__proto__` or `constructor.prototype` key is `noPrototypeKeys` (Fastify reports both as "not
 * valid JSON"); anything else is `isJson`, saying where the JSON breaks. The text is read again on
 * this error path only.
 */
function refusalOf(body: Buffer): RequestValidationError {
  // As secure-json-parse reads it: a leading byte order mark is no part of the JSON.
  const text = body.toString('utf8').replace(/^\uFEFF/, '');
  try {
    JSON.parse(text);
  } catch {
    return new RequestValidationError([{ field: 'body', rule: 'isJson', message: whereJsonBreaks(text) }]);
  }
  return new RequestValidationError([{ field: 'body', rule: 'noPrototypeKeys', message: 'body may not name the property __proto__, nor constructor.prototype' }]);
}

const CONTROL_CHARACTER_IN_STRING = 'a control character in a string (escape it)';

/** What each of jsonc-parser's errors means to a client that sent JSON (comments are not JSON). */
const JSON_SYNTAX_ERRORS: Readonly<Record<string, string>> = {
  InvalidSymbol: 'an unexpected character',
  InvalidNumberFormat: 'a number that JSON does not allow',
  PropertyNameExpected: 'a property name in double quotes expected',
  ValueExpected: 'a value expected',
  ColonExpected: "':' expected",
  CommaExpected: "',' expected",
  CloseBraceExpected: "'}' expected",
  CloseBracketExpected: "']' expected",
  EndOfFileExpected: 'nothing may follow the value',
  InvalidCommentToken: 'a comment, which JSON does not allow',
  UnexpectedEndOfComment: 'a comment, which JSON does not allow',
  UnexpectedEndOfString: 'a string that is not closed',
  UnexpectedEndOfNumber: 'a number that is not finished',
  InvalidUnicode: 'a \\u escape that is not valid',
  InvalidEscapeCharacter: 'an escape that is not valid',
  InvalidCharacter: CONTROL_CHARACTER_IN_STRING,
};

/**
 * The first syntax error of text JSON.parse refused, by line and column (in characters, as every
 * text rule counts them). JSON.parse names no position for some errors, so jsonc-parser (strict:
 * no comments, no trailing commas) finds it; should it find none, the message says so without one.
 */
export function whereJsonBreaks(text: string): string {
  if (text.trim() === '') return 'body is empty, which is not JSON: send a JSON object, or no body and no Content-Type';
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (first === undefined) return 'body is not valid JSON';
  const code = printParseErrorCode(first.error);
  // jsonc-parser names the string, not the character: a raw line end reads to it as the string's end.
  const control = code === 'InvalidCharacter' || code === 'UnexpectedEndOfString' ? controlCharacterIn(text, first.offset) : undefined;
  const offset = control ?? first.offset;
  const what = control === undefined ? (JSON_SYNTAX_ERRORS[code] ?? 'a syntax error') : CONTROL_CHARACTER_IN_STRING;
  const { line, column } = lineAndColumn(text, offset);
  return `body is not valid JSON at line ${line}, column ${column}: ${what}`;
}

/** The offset of the first raw control character in the string that starts at `quoteAt`, if it has one before its closing quote. */
function controlCharacterIn(text: string, quoteAt: number): number | undefined {
  for (let at = quoteAt + 1; at < text.length; at += 1) {
    const char = text.charCodeAt(at);
    if (char < 0x20) return at;
    if (char === 0x22) return undefined;
    if (char === 0x5c) at += 1;
  }
  return undefined;
}

/** 1-based line and column of `offset`: a line ends at LF, CRLF or CR alone; the column counts characters (code points). */
function lineAndColumn(text: string, offset: number): { readonly line: number; readonly column: number } {
  const lines = text.slice(0, offset).split(/\r\n|\r|\n/);
  return { line: lines.length, column: [...(lines[lines.length - 1] ?? '')].length + 1 };
}

/**
 * The service's only body parsers, in place of every parser Fastify and Nest bring (JSON, plain
 * text, url-encoded forms): `application/json` (with any parameters, such as a charset) is parsed
 * once its depth is checked, so nothing downstream (class-transformer, the Idempotency-Key body hash,
 * canonical JSON) ever walks a deep structure, and must be an object (`notAnObject`) naming each
 * property once in each object (`ambiguous`), with no property named as one every object inherits
 * (`inheritedNameIn`), with numbers a double holds as written (`inexact`); any other media type, a body with none, or an encoded
 * (compressed) body is 415 UNSUPPORTED_MEDIA_TYPE naming the type or the coding. Register it before
 * the routes are added.
 */
export function registerRequestBodyParsers(fastify: FastifyInstance, depthMax: number = JSON_NESTING_DEPTH_MAX): void {
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(JSON_MEDIA_TYPE, { parseAs: 'buffer' }, (request: FastifyRequest, body: Buffer, done) => {
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      // RFC 9110 15.5.16: a content coding the server does not take is 415. The bytes are not JSON.
      done(new RequestBodyError('UNSUPPORTED_MEDIA_TYPE', `a request body must not be encoded; Content-Encoding ${encoding} is not supported`, { contentEncoding: encoding, accepted: 'identity' }), undefined);
      return;
    }
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
      // A provider's webhook is the provider's text, judged by its signature, not by our rules.
      const ours = !(request.routeOptions.url ?? '').startsWith('/v1/payments/webhooks/');
      const refused = error === null ? (ambiguous(body, value) ?? (ours ? (inheritedNameIn(value) ?? inexact(body)) : undefined)) : refusalOf(body);
      if (refused === undefined) done(null, value);
      else done(refused, undefined);
    });
  });
  fastify.addContentTypeParser('*', (request: FastifyRequest, _payload, done) => {
    done(unsupportedMediaTypeOf(request), undefined);
  });
}

/** 415 UNSUPPORTED_MEDIA_TYPE for the request's Content-Type (or its absence), naming it and the one accepted. */
export function unsupportedMediaTypeOf(request: FastifyRequest): RequestBodyError {
  const received = request.headers['content-type'] ?? '(none)';
  return new RequestBodyError('UNSUPPORTED_MEDIA_TYPE', `a request body must be ${JSON_MEDIA_TYPE}, not ${received}`, { contentType: received, accepted: JSON_MEDIA_TYPE });
}
