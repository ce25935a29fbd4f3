import { ENDPOINT_ACTIONS } from '@app/auth';
import type { OpenAPIObject, OperationObject, ParameterObject, ReferenceObject, ResponseObject, SchemaObject, TagObject } from '@nestjs/swagger';
import { isPublicRoute } from '../auth/access-control.js';
import { IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_PATTERN, idempotencyKeyHandling, REPLAYED_HEADER, UNFINISHED_WHEN_ACCEPTED } from '../http/idempotency/idempotency.hooks.js';
import { judgesQueryOf } from '../http/no-query.guard.js';
import { isHealthProbe } from '../http/rate-limits.js';
import { describeProblem, PROBLEM_CODES_EXTENSION, type ProblemCode } from './api-problems.decorator.js';

/** Every tag an operation may carry, declared once with what it groups. */
export const API_TAGS: readonly TagObject[] = [
  { name: 'accounts', description: 'Balances, purchases, usage and the transaction history of a token account.' },
  { name: 'holds and lots', description: 'Holds (reserve, settle, release) and the credit lots of a token account.' },
  { name: 'payments', description: "Token packages on sale, payments through the configured provider, and the providers' signed notifications." },
  { name: 'audit', description: "The auditor's view of an account: raw events, balances as of a point, verification, signed bundles." },
  { name: 'admin', description: 'Operators: projections and their rebuilds, per-account rebuilds, adjustments, grants and API keys.' },
  { name: 'health', description: 'Whether the process and its database answer.' },
];

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';
const PROBLEM_SCHEMA_REF = '#/components/schemas/Problem';
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const;

/** Every operation's problem codes beside its own, by what the operation is. */
const PROTECTED_PROBLEMS: readonly ProblemCode[] = ['CREDENTIALS_MISSING', 'FORBIDDEN', 'AUTHENTICATION_UNAVAILABLE', 'DATABASE_UNAVAILABLE'];
// Fastify parses a body sent with any method but GET and HEAD, whether or not the route reads one:
// JSON that is not valid, or not an object, is VALIDATION_FAILED naming the body; BAD_REQUEST is
// any refusal Fastify's body handling makes on its own.
const BODY_PROBLEMS: readonly ProblemCode[] = ['BODY_TOO_DEEP', 'BODY_NOT_UTF8', 'UNSUPPORTED_MEDIA_TYPE', 'VALIDATION_FAILED', 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE'];
const KEYED_PROBLEMS: readonly ProblemCode[] = ['IDEMPOTENCY_KEY_INVALID', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_KEY_IN_PROGRESS'];

const PROBLEM_SCHEMA: SchemaObject = {
  type: 'object',
  description:
    'An RFC 9457 problem. `code` is stable and names the rule; `type` is `urn:token-ledger:problem:<code in kebab case>`. ' +
    'A code may add members of its own (INSUFFICIENT_BALANCE: `balance`, `requested`; VALIDATION_FAILED: `errors`). ' +
    'A 400 other than VALIDATION_FAILED and BAD_REQUEST (a body the HTTP server itself could not read) names the value refused in `field` and the rule it breaks in `rule`.',
  required: ['type', 'title', 'status', 'code', 'detail', 'instance'],
  properties: {
    type: { type: 'string', example: 'urn:token-ledger:problem:insufficient-balance' },
    title: { type: 'string', example: 'Insufficient token balance' },
    status: { type: 'integer', minimum: 400, maximum: 599, example: 409 },
    code: { type: 'string', example: 'INSUFFICIENT_BALANCE' },
    detail: { type: 'string', example: 'balance 5 is less than the 10 tokens requested' },
    instance: { type: 'string', description: 'The request path.', example: '/v1/accounts/8d0e0a57-2a4f-4f0e-9d3c-6a1f0b7f2c11/usage' },
    field: {
      type: 'string',
      description: 'A 400 other than VALIDATION_FAILED and BAD_REQUEST: the value refused (a body property, a parameter, a header, or `body`).',
      example: 'expiresInSeconds',
    },
    rule: { type: 'string', description: 'A 400 other than VALIDATION_FAILED and BAD_REQUEST: the rule `field` breaks.', example: 'range' },
    errors: {
      type: 'array',
      description: 'VALIDATION_FAILED: every field and rule the request broke.',
      items: {
        type: 'object',
        required: ['field', 'rule', 'message'],
        properties: {
          field: { type: 'string', example: 'amount' },
          rule: { type: 'string', example: 'min' },
          message: { type: 'string', example: 'amount must not be less than 1' },
        },
      },
    },
  },
  additionalProperties: true,
};

const IDEMPOTENCY_KEY_PARAMETER: ParameterObject = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Repeats with the same key, method, path and body get the first response (marked `Idempotent-Replayed: true`) without doing the work again; ' +
    'a path UUID in either case or percent-escaped, a top-level field sent as null or left out, and no body or {} on a route that takes none, are the same. ' +
    'The same key with another body is 422 IDEMPOTENCY_KEY_REUSED. Keys belong to the caller and are kept IDEMPOTENCY_KEY_TTL_HOURS hours, a setting of the service (24 by default).',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: IDEMPOTENCY_KEY_PATTERN.source },
  example: '6f1c2b7e-2d4a-4c7b-9b1e-0a3c5d7e9f21',
};

/**
 * The project's licence as package.json names it: `UNLICENSED`, npm's term for no licence granted.
 * The URL is where npm defines that term (there is no licence text of ours to link to).
 */
const LICENSE = { name: 'UNLICENSED (no licence granted)', url: 'https://docs.npmjs.com/cli/v10/configuring-npm/package-json#license' } as const;

/**
 * The served document made a contract a client can be generated from: every operation gets the
 * problem responses its kind and its own `@ApiProblems` codes can answer (one shared schema,
 * `application/problem+json`, an example per code), the Idempotency-Key header where the hooks
 * honour one, `security: []` where the access control lets anyone in; the document gets its tags,
 * servers and licence. What the hooks and tables decide is asked of them, not written twice.
 */
export function completeContract(document: OpenAPIObject): OpenAPIObject {
  const used = new Set<string>();
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (operation === undefined) continue;
      completeOperation(method.toUpperCase(), path, operation);
      for (const tag of operation.tags ?? []) used.add(tag);
    }
  }
  const declared = new Set(API_TAGS.map((tag) => tag.name));
  return {
    ...document,
    info: { ...document.info, license: LICENSE },
    servers: document.servers !== undefined && document.servers.length > 0 ? document.servers : [{ url: '/', description: 'The service that serves this document' }],
    // A tag no row describes is still declared, so the linter names it (tag-description) instead of the document hiding it.
    tags: [...API_TAGS, ...[...used].filter((name) => !declared.has(name)).map((name) => ({ name }))],
    components: { ...document.components, schemas: { ...mapValues(document.components?.schemas ?? {}, withNullableReferences), Problem: PROBLEM_SCHEMA } },
  };
}

/**
 * A nullable property of a class type, as Swagger writes it (`nullable: true` beside `allOf: [{ $ref }]`),
 * refuses null under OpenAPI 3.0: `nullable` only widens the `type` beside it, and the referenced
 * schema still says object (ajv: "must be object"). Written as one of the reference or null, a strict
 * validator accepts both, and the generated client still types it `X | null`. Nested schemas too.
 */
function withNullableReferences(schema: SchemaObject | ReferenceObject): SchemaObject | ReferenceObject {
  if ('$ref' in schema) return schema;
  const { nullable, allOf, type: _type, ...rest } = schema;
  const only = allOf?.length === 1 ? allOf[0] : undefined;
  if (nullable === true && only !== undefined && '$ref' in only) return { ...rest, oneOf: [only, { enum: [null] }] };
  return {
    ...schema,
    ...(schema.properties === undefined ? {} : { properties: mapValues(schema.properties, withNullableReferences) }),
    ...(schema.items === undefined ? {} : { items: withNullableReferences(schema.items) }),
  };
}

function mapValues<Value>(record: Record<string, Value>, map: (value: Value) => Value): Record<string, Value> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, map(value)]));
}

/**
 * The refusals an Idempotency-Key keeps and replays (`settlementOf` in the idempotency hooks): every
 * final 4xx that reaches the handler. Not 400 or 401 (the client corrects the request under the same
 * key), 403, 413, 415 or 429 (answered before the key is claimed), nor IDEMPOTENCY_KEY_REUSED's 422,
 * which the key's own check answers.
 */
const STORED_REFUSALS: ReadonlySet<string> = new Set(['402', '404', '409', '422']);

function completeOperation(method: string, path: string, operation: OperationObject): void {
  const extensions = operation as unknown as Record<string, unknown>;
  const own = (extensions[PROBLEM_CODES_EXTENSION] ?? []) as readonly ProblemCode[];
  delete extensions[PROBLEM_CODES_EXTENSION];

  const isProtected = ENDPOINT_ACTIONS.some((endpoint) => endpoint.method === method && endpoint.path === path);
  if (!isProtected && isPublicRoute(method, path)) operation.security = [];
  const keys = idempotencyKeyHandling(method, path);
  if (keys === 'honoured') {
    operation.parameters = [...(operation.parameters ?? []).filter((parameter) => !isIdempotencyKeyParameter(parameter)), IDEMPOTENCY_KEY_PARAMETER];
    // A 202 the key does not keep (a refund still in progress) is never replayed.
    const unkept = (status: string) => status === '202' && path.replace(/\{(\w+)\}/g, ':$1') === UNFINISHED_WHEN_ACCEPTED;
    for (const [status, response] of Object.entries(operation.responses)) {
      if (response === undefined || '$ref' in response) continue;
      if (status.startsWith('2') && !unkept(status)) {
        response.headers = { ...response.headers, [headerName(REPLAYED_HEADER)]: { description: 'Present (true) when this is the stored response of an earlier request with the same Idempotency-Key.', schema: { type: 'string', enum: ['true'] } } };
      }
    }
  }

  const codes = new Set<ProblemCode>(['INTERNAL_ERROR', ...own]);
  // The health probes are never limited (rate-limits.ts says why).
  if (!isHealthProbe(path)) codes.add('RATE_LIMITED');
  if (isProtected) for (const code of PROTECTED_PROBLEMS) codes.add(code);
  // A query string is judged on every route of ours, one that takes none included (NoQueryGuard).
  if ((operation.parameters ?? []).length > 0 || operation.requestBody !== undefined || judgesQueryOf(path)) codes.add('VALIDATION_FAILED');
  if (method !== 'GET' && method !== 'HEAD') for (const code of BODY_PROBLEMS) codes.add(code);
  if (keys === 'honoured') for (const code of KEYED_PROBLEMS) codes.add(code);
  if (keys === 'refused') codes.add('IDEMPOTENCY_KEY_INVALID');
  addProblemResponses(operation, path, [...codes]);
  if (keys === 'honoured') {
    for (const [status, response] of Object.entries(operation.responses)) {
      if (response === undefined || '$ref' in response || !STORED_REFUSALS.has(status)) continue;
      response.headers = {
        ...response.headers,
        [headerName(REPLAYED_HEADER)]: {
          description:
            'Present (true) when this is the stored refusal of an earlier request with the same Idempotency-Key: a final refusal is kept as a success is. Never on the key\'s own IDEMPOTENCY_KEY_IN_PROGRESS and IDEMPOTENCY_KEY_REUSED, nor on the codes that invite a retry (CONCURRENCY_CONFLICT, PAYMENT_NOT_AUTHORIZED, REFUND_FAILED, REBUILD_IN_PROGRESS), which the key does not keep.',
          schema: { type: 'string', enum: ['true'] },
        },
      };
    }
  }
}

/** One response per status the codes answer with, replacing any error response a decorator described. */
function addProblemResponses(operation: OperationObject, path: string, codes: readonly ProblemCode[]): void {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of codes) {
    const { status } = describeProblem(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<string, ResponseObject | ReferenceObject | undefined> = {};
  for (const [status, response] of Object.entries(operation.responses)) {
    if (!isErrorStatus(status)) responses[status] = response;
    // An error response a decorator described without a code keeps its words, with the problem schema.
    else if (!byStatus.has(Number(status)) && response !== undefined && !('$ref' in response)) responses[status] = { description: response.description, content: { [PROBLEM_MEDIA_TYPE]: { schema: { $ref: PROBLEM_SCHEMA_REF } } } };
  }
  for (const [status, statusCodes] of [...byStatus].sort(([a], [b]) => a - b)) responses[String(status)] = problemResponse(path, statusCodes);
  operation.responses = responses;
}

function problemResponse(path: string, codes: readonly ProblemCode[]): ResponseObject {
  const described = codes.map((code) => ({ code, ...describeProblem(code) }));
  const publicCodes = [...new Set(described.map((problem) => problem.publicCode))].sort();
  const examples = Object.fromEntries(
    described
      .filter((problem, index) => described.findIndex((other) => other.publicCode === problem.publicCode) === index)
      .map((problem) => [problem.publicCode, { summary: problem.title, value: exampleProblem(problem.publicCode, problem.status, problem.title, problem.detail, path) }]),
  );
  const retryAfter = described.some((problem) => problem.retryAfterSeconds !== undefined || problem.code === 'RATE_LIMITED');
  return {
    description: publicCodes.map((code) => `\`${code}\`: ${described.find((problem) => problem.publicCode === code)?.title ?? code}`).join('; '),
    ...(retryAfter ? { headers: { 'Retry-After': { description: 'Seconds after which the request may be sent again (the codes that name one).', schema: { type: 'integer', minimum: 1 } } } } : {}),
    content: {
      [PROBLEM_MEDIA_TYPE]: {
        schema: { allOf: [{ $ref: PROBLEM_SCHEMA_REF }, { type: 'object', required: ['code'], properties: { code: { type: 'string', enum: publicCodes } } }] },
        examples,
      },
    },
  };
}

function exampleProblem(code: string, status: number, title: string, detail: string, path: string): Record<string, unknown> {
  return {
    type: `urn:token-ledger:problem:${code.toLowerCase().replaceAll('_', '-')}`,
    title,
    status,
    code,
    detail,
    instance: path,
    ...(code === 'VALIDATION_FAILED' ? { detail: 'amount must not be less than 1', errors: [{ field: 'amount', rule: 'min', message: 'amount must not be less than 1' }] } : {}),
  };
}

function isErrorStatus(status: string): boolean {
  return /^[45]\d\d$/.test(status) || /^[45]XX$/i.test(status);
}

function isIdempotencyKeyParameter(parameter: ParameterObject | ReferenceObject): boolean {
  return !('$ref' in parameter) && parameter.in === 'header' && parameter.name.toLowerCase() === IDEMPOTENCY_HEADER;
}

/** `idempotent-replayed` -> `Idempotent-Replayed`, as the header is written in documentation. */
function headerName(lowerCase: string): string {
  return lowerCase.replace(/(^|-)([a-z])/g, (_match, dash: string, letter: string) => `${dash}${letter.toUpperCase()}`);
}
