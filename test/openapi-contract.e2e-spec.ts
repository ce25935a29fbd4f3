import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ENDPOINT_ACTIONS } from '@app/auth';
import { DESCRIPTION_LENGTH_MAX, HOLD_TTL_SECONDS_MAX, LOT_PRIORITY_MAX, REASON_LENGTH_MAX } from '@app/ledger';
import { DEVELOPMENT_WEBHOOK_SECRET } from '../apps/api/src/config/app.config.js';
import { signWebhook } from '../apps/api/src/payments/webhook-signature.guard.js';
import { isPublicRoute } from '../apps/api/src/auth/access-control.js';
import { idempotencyKeyHandling } from '../apps/api/src/http/idempotency/idempotency.hooks.js';
import { ERROR_CODES, PROBLEM_TYPES } from '../apps/api/src/http/problem-types.js';
import { PROBLEM_MEDIA_TYPE } from '../apps/api/src/openapi/contract.js';
import { startTestApp, type TestApp } from './support/test-app.js';

type Schema = {
  $ref?: string;
  type?: string;
  description?: string;
  maximum?: number;
  nullable?: boolean;
  allOf?: Schema[];
  oneOf?: Schema[];
  properties?: Record<string, Schema>;
  additionalProperties?: unknown;
  items?: Schema;
  enum?: unknown[];
  required?: string[];
};
type Response = { description: string; content?: Record<string, { schema?: Schema; examples?: Record<string, { value: { code: string; status: number } }> }> };
type Parameter = { name: string; in: string };
type Operation = { operationId?: string; summary?: string; tags?: string[]; security?: unknown[]; parameters?: Parameter[]; requestBody?: { required?: boolean }; responses: Record<string, Response> };
type Document = {
  info: { license?: { name: string; url?: string } };
  servers?: { url: string }[];
  tags?: { name: string; description?: string }[];
  security?: unknown[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};

let testApp: TestApp;
let document: Document;

/**
 * Codes of the table no request can get, so no operation may list them: HOLD_ID_REUSED needs a
 * hold id chosen twice, and the service makes every hold id (a client cannot send one). The others
 * are the domain's checks of values every body that carries them refuses first, by the same rule,
 * with VALIDATION_FAILED naming the field and the rule ("answers the values a body's own rules
 * refuse ..." below): the domain keeps them for its other callers (the CLI, tests, replays).
 */
const NEVER_ANSWERED: ReadonlySet<string> = new Set(['HOLD_ID_REUSED', 'DESCRIPTION_TOO_LONG', 'REASON_REQUIRED', 'REASON_TOO_LONG', 'LOT_PRIORITY_OUT_OF_RANGE', 'METADATA_INVALID']);

beforeAll(async () => {
  testApp = await startTestApp();
  document = (await testApp.anonymous().get('/docs-json').expect(200)).body as Document;
});

afterAll(async () => {
  await testApp.close();
});

function operations(): { method: string; path: string; operation: Operation }[] {
  return Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })));
}

/** The codes a problem response names (its schema's enum), or undefined when it is not a problem response. */
function problemCodes(response: Response | undefined): string[] | undefined {
  const schema = response?.content?.[PROBLEM_MEDIA_TYPE]?.schema;
  if (schema?.allOf?.[0]?.$ref !== '#/components/schemas/Problem') return undefined;
  return schema.allOf[1]?.properties?.['code']?.enum as string[] | undefined;
}

describe('the OpenAPI document the service serves', () => {
  it('names every operation: a readable, unique operationId, a summary and a declared, described tag', () => {
    const declared = new Map((document.tags ?? []).map((tag) => [tag.name, tag.description]));
    const ids = operations().map(({ operation }) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { method, path, operation } of operations()) {
      const where = `${method} ${path}`;
      expect({ where, operationId: operation.operationId }).toEqual({ where, operationId: expect.stringMatching(/^[a-z][A-Za-z]+$/) });
      expect({ where, summary: operation.summary }).toEqual({ where, summary: expect.stringMatching(/\S/) });
      expect(operation.tags?.length).toBeGreaterThan(0);
      for (const tag of operation.tags ?? []) expect({ tag, description: declared.get(tag) }).toEqual({ tag, description: expect.stringMatching(/\S/) });
    }
  });

  it('has servers, a licence and credentials required everywhere but on the public routes, which say security: []', () => {
    expect(document.servers?.length).toBeGreaterThan(0);
    expect(document.info.license).toEqual({ name: 'UNLICENSED (no licence granted)', url: expect.stringMatching(/^https:\/\//) });
    expect(document.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    const publicOperations = operations().filter(({ method, path }) => isPublicRoute(method, path));
    expect(publicOperations.map(({ method, path }) => `${method} ${path}`).sort()).toEqual(['GET /health', 'GET /health/live', 'GET /health/ready', 'GET /v1/packages', 'POST /v1/payments/webhooks/mock', 'POST /v1/payments/webhooks/stripe']);
    for (const { operation } of publicOperations) expect(operation.security).toEqual([]);
    for (const { operation } of operations().filter(({ method, path }) => !isPublicRoute(method, path))) expect(operation.security).toBeUndefined();
  });

  it('documents 401 UNAUTHENTICATED and 403 FORBIDDEN as problems on every operation that needs credentials', () => {
    const protectedOperations = operations().filter(({ method, path }) => ENDPOINT_ACTIONS.some((endpoint) => endpoint.method === method && endpoint.path === path));
    expect(protectedOperations).toHaveLength(ENDPOINT_ACTIONS.length);
    for (const { method, path, operation } of protectedOperations) {
      const where = `${method} ${path}`;
      expect({ where, codes: problemCodes(operation.responses['401']) }).toEqual({ where, codes: ['UNAUTHENTICATED'] });
      expect({ where, codes: problemCodes(operation.responses['403']) }).toEqual({ where, codes: ['FORBIDDEN'] });
    }
  });

  it('documents 429 RATE_LIMITED on every operation but the health probes, which are never limited', () => {
    for (const { method, path, operation } of operations()) {
      const where = `${method} ${path}`;
      const codes = path === '/health' || path.startsWith('/health/') ? undefined : ['RATE_LIMITED'];
      expect({ where, has429: operation.responses['429'] !== undefined, codes: problemCodes(operation.responses['429']) }).toEqual({ where, has429: codes !== undefined, codes });
    }
  });

  it('is, in every response, the document committed for clients (libs/client/openapi.json, which `npm run client:check` holds equal to what the built service serves)', () => {
    // Served here by Jest's loader, where a decorator that documents itself through @nestjs/swagger documents nothing: a difference is such documentation.
    const committed = JSON.parse(readFileSync(new URL('../libs/client/openapi.json', import.meta.url), 'utf8')) as Document;
    const responses = (of: Document) => Object.entries(of.paths).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => [`${method.toUpperCase()} ${path}`, operation.responses]));
    expect(Object.fromEntries(responses(committed))).toEqual(Object.fromEntries(responses(document)));
  });

  it('answers every 4xx and 5xx with the shared problem schema, as application/problem+json, with an example of each code', () => {
    expect(document.components.schemas['Problem']?.required).toEqual(['type', 'title', 'status', 'code', 'detail', 'instance']);
    for (const { method, path, operation } of operations()) {
      const errorStatuses = Object.keys(operation.responses).filter((status) => /^[45]/.test(status));
      expect(errorStatuses.length).toBeGreaterThan(0);
      for (const status of errorStatuses) {
        const where = `${method} ${path} ${status}`;
        const codes = problemCodes(operation.responses[status]);
        expect({ where, codes }).toEqual({ where, codes: expect.arrayContaining([expect.any(String)]) });
        const examples = operation.responses[status]?.content?.[PROBLEM_MEDIA_TYPE]?.examples ?? {};
        expect({ where, examples: Object.keys(examples).sort() }).toEqual({ where, examples: codes });
        for (const example of Object.values(examples)) expect(example.value.status).toBe(Number(status));
      }
    }
  });

  it('documents every code of the error-code table that a caller can receive, each under the status the table gives it, and no other', () => {
    const documented = new Map<string, Set<number>>();
    for (const { operation } of operations()) {
      for (const [status, response] of Object.entries(operation.responses)) {
        for (const code of problemCodes(response) ?? []) documented.set(code, (documented.get(code) ?? new Set()).add(Number(status)));
      }
    }
    for (const code of ERROR_CODES) {
      const type = PROBLEM_TYPES[code];
      const publicCode = type.publicCode ?? code;
      const statuses = NEVER_ANSWERED.has(code) ? [] : [type.status];
      expect({ publicCode, statuses: [...(documented.get(publicCode) ?? [])] }).toEqual({ publicCode, statuses });
    }
  });

  it('declares the Idempotency-Key header on exactly the operations whose hooks honour it', () => {
    for (const { method, path, operation } of operations()) {
      const declared = (operation.parameters ?? []).some((parameter) => parameter.in === 'header' && parameter.name === 'Idempotency-Key');
      expect({ where: `${method} ${path}`, declared }).toEqual({ where: `${method} ${path}`, declared: idempotencyKeyHandling(method, path) === 'honoured' });
    }
    const posts = operations().filter(({ method }) => method === 'POST');
    expect(posts.filter(({ operation }) => (operation.parameters ?? []).some((parameter) => parameter.name === 'Idempotency-Key')).map(({ path }) => path)).toEqual(
      posts.map(({ path }) => path).filter((path) => !path.startsWith('/v1/payments/webhooks/') && path !== '/v1/admin/api-keys'),
    );
  });

  it('declares Idempotent-Replayed on the refusals a key stores and replays, and a replayed refusal carries it', async () => {
    const header = (method: string, path: string, status: string) => {
      const response = document.paths[path]?.[method]?.responses[status];
      return response !== undefined && 'headers' in response ? Object.keys(response.headers ?? {}) : [];
    };
    expect(header('post', '/v1/accounts/{userId}/usage', '409')).toContain('Idempotent-Replayed');
    expect(header('post', '/v1/accounts/{userId}/usage', '400')).not.toContain('Idempotent-Replayed');
    expect(header('get', '/v1/accounts/{userId}/balance', '404')).not.toContain('Idempotent-Replayed');
    const userId = randomUUID();
    const key = randomUUID();
    const first = await testApp.http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 1 }).expect(409);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const again = await testApp.http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 1 }).expect(409);
    expect({ replayed: again.headers['idempotent-replayed'], code: again.body.code }).toEqual({ replayed: 'true', code: 'INSUFFICIENT_BALANCE' });
  });

  it('types the body of every success response (no response a client would type as having no content)', () => {
    for (const { method, path, operation } of operations()) {
      for (const [status, response] of Object.entries(operation.responses).filter(([status]) => /^2/.test(status))) {
        const schemas = Object.values(response.content ?? {}).map((media) => media.schema);
        expect({ where: `${method} ${path} ${status}`, typed: schemas.length > 0 && schemas.every((schema) => schema !== undefined) }).toEqual({ where: `${method} ${path} ${status}`, typed: true });
      }
    }
  });

  it('gives every property a type a client can use: no object without members (a `string | null` field left to reflection)', () => {
    type PropertySchema = Schema & { type?: string; additionalProperties?: unknown };
    for (const [name, schema] of Object.entries(document.components.schemas)) {
      for (const [property, value] of Object.entries((schema.properties ?? {}) as Record<string, PropertySchema>)) {
        const shapeless = value.type === 'object' && value.properties === undefined && value.additionalProperties === undefined && value.allOf === undefined && value.$ref === undefined;
        expect({ property: `${name}.${property}`, shapeless }).toEqual({ property: `${name}.${property}`, shapeless: false });
      }
    }
  });
});

/**
 * What a body breaks of its documented schema: a missing required member, a member of another type,
 * a value outside its enum, or a member the schema does not name (where it allows no others).
 */
function violations(value: unknown, schema: Schema, at: string): string[] {
  if (schema.$ref !== undefined) return violations(value, document.components.schemas[schema.$ref.replace('#/components/schemas/', '')] ?? {}, at);
  if (schema.oneOf !== undefined) {
    const matched = schema.oneOf.filter((part) => violations(value, part, at).length === 0).length;
    return matched === 1 ? [] : [`${at}: ${JSON.stringify(value)} matches ${matched} of its oneOf`];
  }
  // As OpenAPI 3.0.3 (and ajv) read `nullable`: it lets null past the `type` beside it, and nothing
  // else, so an `allOf` or an `enum` beside it still judges a null.
  const nullRefused = value === null && schema.type !== undefined && schema.nullable !== true ? [`${at}: null`] : [];
  if (schema.allOf !== undefined) return [...nullRefused, ...schema.allOf.flatMap((part) => violations(value, part, at))];
  if (schema.enum !== undefined && !schema.enum.includes(value)) return [`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`];
  if (value === null) return nullRefused;
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return [`${at}: not an object`];
      const record = value as Record<string, unknown>;
      const missing = (schema.required ?? []).filter((name) => !(name in record)).map((name) => `${at}.${name}: missing`);
      const members = Object.entries(record).flatMap(([name, member]) => {
        const property = schema.properties?.[name];
        if (property !== undefined) return violations(member, property, `${at}.${name}`);
        return schema.additionalProperties === undefined || schema.additionalProperties === false ? [`${at}.${name}: not documented`] : [];
      });
      return [...missing, ...members];
    }
    case 'array':
      return Array.isArray(value) ? value.flatMap((item, index) => violations(item, schema.items ?? {}, `${at}[${index}]`)) : [`${at}: not an array`];
    case 'integer':
      return Number.isInteger(value) ? [] : [`${at}: not an integer`];
    case 'number':
      return typeof value === 'number' ? [] : [`${at}: not a number`];
    case 'string':
    case 'boolean':
      return typeof value === schema.type ? [] : [`${at}: not a ${schema.type}`];
    case undefined: // no type stated: anything
    default:
      return [];
  }
}

type Answer = { readonly status: number; readonly headers: Record<string, string>; readonly body: { readonly code?: unknown } };

/**
 * What a problem answer breaks of its operation's documentation: another code than the one expected,
 * a status the operation does not document, a code not among that status's, a body off the problem
 * schema, another media type.
 */
function undeclared(method: string, path: string, expected: string, answer: Answer): string[] {
  const where = `${method} ${path} ${answer.status} ${String(answer.body.code)}`;
  if (answer.body.code !== expected) return [`${where}: expected ${expected}`];
  const codes = problemCodes(document.paths[path]?.[method.toLowerCase()]?.responses[String(answer.status)]);
  return [
    ...(codes === undefined ? [`${where}: the status is not documented`] : codes.includes(expected) ? [] : [`${where}: not among the documented ${codes.join(', ')}`]),
    ...(/^application\/problem\+json/.test(answer.headers['content-type'] ?? '') ? [] : [`${where}: sent as ${answer.headers['content-type']}`]),
    ...violations(answer.body, { $ref: '#/components/schemas/Problem' }, `${where}: body`),
  ];
}

describe('what the service answers, against the document', () => {
  it('sends, on every read and write of a day in the life of an account, bodies that match the documented success schemas', async () => {
    const http = () => testApp.http();
    const userId = randomUUID();
    const purchase = await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100, description: null }).expect(201);
    const hold = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 10 }).expect(201);
    const key = await http().post('/v1/admin/api-keys').send({ name: `contract ${randomUUID()}`, role: 'auditor' }).expect(201);
    const payment = await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
    const webhookBody = JSON.stringify({ id: `evt_${randomUUID()}`, type: 'order.captured', orderId: payment.body.orderId, paymentId: payment.body.paymentId });
    const calls = [
      ['POST', '/v1/accounts/{userId}/purchases', purchase],
      ['POST', '/v1/accounts/{userId}/holds', hold],
      ['POST', '/v1/admin/api-keys', key],
      ['POST', '/v1/payments', payment],
      ['POST', '/v1/payments/webhooks/mock', await testApp.anonymous().post('/v1/payments/webhooks/mock').set('content-type', 'application/json').set('x-mock-signature', signWebhook(DEVELOPMENT_WEBHOOK_SECRET, webhookBody)).send(webhookBody).expect(200)],
      ['POST', '/v1/payments/{paymentId}/capture', await http().post(`/v1/payments/${payment.body.paymentId}/capture`).expect(200)],
      // No body (a refund is whole), which the document must not require.
      ['POST', '/v1/payments/{paymentId}/refund', await http().post(`/v1/payments/${payment.body.paymentId}/refund`).expect(200)],
      ['GET', '/v1/payments/{paymentId}', await http().get(`/v1/payments/${payment.body.paymentId}`).expect(200)],
      ['POST', '/v1/accounts/{userId}/usage', await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 5, description: 'contract' }).expect(201)],
      ['POST', '/v1/accounts/{userId}/holds/{holdId}/settle', await http().post(`/v1/accounts/${userId}/holds/${hold.body.holdId}/settle`).send({ amount: 4 }).expect(200)],
      ['POST', '/v1/admin/accounts/{userId}/grants', await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 7, reason: 'welcome' }).expect(201)],
      ['POST', '/v1/admin/accounts/{userId}/adjustments', await http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: -1, reason: 'correction' }).expect(201)],
      ['GET', '/v1/accounts/{userId}/balance', await http().get(`/v1/accounts/${userId}/balance`).expect(200)],
      ['GET', '/v1/accounts/{userId}/transactions', await http().get(`/v1/accounts/${userId}/transactions`).expect(200)],
      ['GET', '/v1/accounts/{userId}/holds', await http().get(`/v1/accounts/${userId}/holds`).expect(200)],
      ['GET', '/v1/accounts/{userId}/lots', await http().get(`/v1/accounts/${userId}/lots`).expect(200)],
      ['GET', '/v1/accounts/{userId}/payments', await http().get(`/v1/accounts/${userId}/payments`).expect(200)],
      ['GET', '/v1/packages', await testApp.anonymous().get('/v1/packages').expect(200)],
      ['GET', '/v1/admin/projections', await http().get('/v1/admin/projections').expect(200)],
      ['POST', '/v1/admin/accounts/{userId}/rebuild', await http().post(`/v1/admin/accounts/${userId}/rebuild`).expect(200)],
      ['GET', '/v1/admin/api-keys', await http().get('/v1/admin/api-keys').expect(200)],
      ['DELETE', '/v1/admin/api-keys/{id}', await http().delete(`/v1/admin/api-keys/${key.body.id}`).expect(200)],
      ['GET', '/v1/audit/signing-key', await http().get('/v1/audit/signing-key').expect(200)],
      ['GET', '/v1/audit/accounts/{userId}/events', await http().get(`/v1/audit/accounts/${userId}/events`).expect(200)],
      ['GET', '/v1/audit/accounts/{userId}/balance', await http().get(`/v1/audit/accounts/${userId}/balance?revision=1`).expect(200)],
      ['GET', '/v1/audit/accounts/{userId}/verify', await http().get(`/v1/audit/accounts/${userId}/verify`).expect(200)],
    ] as const;
    for (const [method, path, response] of calls) {
      const documented = document.paths[path]?.[method.toLowerCase()]?.responses[String(response.status)]?.content?.['application/json']?.schema;
      expect({ call: `${method} ${path} ${response.status}`, documented: documented !== undefined, violations: violations(response.body, documented ?? {}, 'body') }).toEqual({
        call: `${method} ${path} ${response.status}`,
        documented: true,
        violations: [],
      });
    }
    expect(document.paths['/v1/payments/{paymentId}/refund']?.['post']?.requestBody?.required).not.toBe(true);
  });

  it('sends problems that match the shared problem schema, each with a code its operation declares under that status', async () => {
    const userId = randomUUID();
    const problems = [
      ['POST', '/v1/accounts/{userId}/usage', 'INSUFFICIENT_BALANCE', await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 }).expect(409)],
      ['POST', '/v1/accounts/{userId}/usage', 'VALIDATION_FAILED', await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 0 }).expect(400)],
      ['GET', '/v1/accounts/{userId}/balance', 'UNAUTHENTICATED', await testApp.anonymous().get(`/v1/accounts/${userId}/balance`).expect(401)],
      ['GET', '/v1/accounts/{userId}/balance', 'FORBIDDEN', await (await testApp.as('user')).get(`/v1/accounts/${userId}/balance`).expect(403)],
      ['GET', '/v1/audit/accounts/{userId}/verify', 'ACCOUNT_NOT_FOUND', await testApp.http().get(`/v1/audit/accounts/${userId}/verify`).expect(404)],
      ['POST', '/v1/payments/webhooks/mock', 'WEBHOOK_SIGNATURE_INVALID', await testApp.anonymous().post('/v1/payments/webhooks/mock').set('content-type', 'application/json').send('{}').expect(401)],
    ] as const;
    expect(problems.flatMap(([method, path, code, problem]) => undeclared(method, path, code, problem))).toEqual([]);
  });

  it("answers the values a body's own rules refuse with VALIDATION_FAILED naming the field and the rule, and lists no domain code for them that it never sends", async () => {
    const http = () => testApp.http();
    const userId = randomUUID();
    await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const hold = (await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 10 }).expect(201)).body as { holdId: string };
    const grant = (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 5, reason: 'welcome' }).expect(201)).body as { lotId: string };
    const tooLong = 'x'.repeat(DESCRIPTION_LENGTH_MAX + 1);
    const longReason = 'x'.repeat(REASON_LENGTH_MAX + 1);
    const cases = [
      // [method, path, the request, the field and rule refused, the domain's code for the same value]
      ['POST', '/v1/accounts/{userId}/usage', http().post(`/v1/accounts/${userId}/usage`).send({ amount: 0 }), ['amount', 'min'], 'AMOUNT_OUT_OF_RANGE'],
      ['POST', '/v1/accounts/{userId}/usage', http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1, description: tooLong }), ['description', 'maxLength'], 'DESCRIPTION_TOO_LONG'],
      ['POST', '/v1/accounts/{userId}/purchases', http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 1, description: tooLong }), ['description', 'maxLength'], 'DESCRIPTION_TOO_LONG'],
      ['POST', '/v1/accounts/{userId}/holds', http().post(`/v1/accounts/${userId}/holds`).send({ amount: 0 }), ['amount', 'min'], 'AMOUNT_OUT_OF_RANGE'],
      ['POST', '/v1/accounts/{userId}/holds/{holdId}/settle', http().post(`/v1/accounts/${userId}/holds/${hold.holdId}/settle`).send({ amount: 1, description: tooLong }), ['description', 'maxLength'], 'DESCRIPTION_TOO_LONG'],
      ['POST', '/v1/admin/accounts/{userId}/adjustments', http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: 0, reason: 'x' }), ['amount', 'notEquals'], 'AMOUNT_OUT_OF_RANGE'],
      ['POST', '/v1/admin/accounts/{userId}/adjustments', http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: 1, reason: '   ' }), ['reason', 'isNotEmpty'], 'REASON_REQUIRED'],
      ['POST', '/v1/admin/accounts/{userId}/grants', http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: longReason }), ['reason', 'maxLength'], 'REASON_TOO_LONG'],
      ['POST', '/v1/admin/accounts/{userId}/grants', http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: 'x', priority: LOT_PRIORITY_MAX + 1 }), ['priority', 'max'], 'LOT_PRIORITY_OUT_OF_RANGE'],
      ['POST', '/v1/admin/accounts/{userId}/grants/{lotId}/void', http().post(`/v1/admin/accounts/${userId}/grants/${grant.lotId}/void`).send({ reason: '' }), ['reason', 'isNotEmpty'], 'REASON_REQUIRED'],
    ] as const;
    for (const [method, path, request, [field, rule], domainCode] of cases) {
      const answer = await request;
      const where = `${method} ${path} ${field}`;
      expect({ where, undeclared: undeclared(method, path, 'VALIDATION_FAILED', answer), errors: answer.body.errors }).toEqual({ where, undeclared: [], errors: [expect.objectContaining({ field, rule })] });
      expect({ where, listed: problemCodes(document.paths[path]?.[method.toLowerCase()]?.responses['400'])?.includes(domainCode) }).toEqual({ where, listed: false });
    }
    // The reason reaches the ledger as the body's rules judged it, trimmed: one the domain would find
    // too long untrimmed is recorded, not refused with the unlisted REASON_TOO_LONG.
    const padded = await http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: 1, reason: `x${' '.repeat(REASON_LENGTH_MAX)}` }).expect(201);
    expect(padded.body.transaction).toMatchObject({ amount: 1, description: 'x' });
  });

  it('declares the refusal of a query string on every operation that takes none (the public list of packages included)', async () => {
    const problems = [
      ['GET', '/v1/packages', 'VALIDATION_FAILED', await testApp.anonymous().get('/v1/packages?x=1').expect(400)],
      ['GET', '/v1/admin/projections', 'VALIDATION_FAILED', await testApp.http().get('/v1/admin/projections?x=1').expect(400)],
      ['GET', '/v1/admin/api-keys', 'VALIDATION_FAILED', await testApp.http().get('/v1/admin/api-keys?x=1').expect(400)],
      ['GET', '/v1/audit/signing-key', 'VALIDATION_FAILED', await testApp.http().get('/v1/audit/signing-key?x=1').expect(400)],
    ] as const;
    expect(problems.flatMap(([method, path, code, problem]) => undeclared(method, path, code, problem))).toEqual([]);
  });

  it("declares the body parser's refusals on every operation that takes a body, whether or not it documents one", async () => {
    const userId = randomUUID();
    const json = (request: ReturnType<ReturnType<TestApp['http']>['post']>) => request.set('content-type', 'application/json');
    const problems = [
      ['POST', '/v1/accounts/{userId}/usage', 'VALIDATION_FAILED', await json(testApp.http().post(`/v1/accounts/${userId}/usage`)).send('{"amount":').expect(400)],
      ['POST', '/v1/accounts/{userId}/usage', 'VALIDATION_FAILED', await json(testApp.http().post(`/v1/accounts/${userId}/usage`)).send('').expect(400)],
      ['POST', '/v1/accounts/{userId}/usage', 'PAYLOAD_TOO_LARGE', await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1, description: 'x'.repeat(64 * 1024) }).expect(413)],
      ['POST', '/v1/payments/{paymentId}/capture', 'VALIDATION_FAILED', await json(testApp.http().post(`/v1/payments/${randomUUID()}/capture`)).send('{').expect(400)],
      ['DELETE', '/v1/admin/api-keys/{id}', 'VALIDATION_FAILED', await testApp.http().delete(`/v1/admin/api-keys/${randomUUID()}`).set('content-type', 'application/json').send('{').expect(400)],
    ] as const;
    expect(problems.flatMap(([method, path, code, problem]) => undeclared(method, path, code, problem))).toEqual([]);
  });

  it("answers a path parameter longer than the router takes as validation does, naming the parameter and the limit, not with Fastify's code", async () => {
    const long = 'a'.repeat(101);
    const problems = [
      ['GET', '/v1/accounts/{userId}/balance', 'VALIDATION_FAILED', await testApp.http().get(`/v1/accounts/${long}/balance`).expect(400)],
      ['POST', '/v1/accounts/{userId}/holds/{holdId}/release', 'VALIDATION_FAILED', await testApp.http().post(`/v1/accounts/${randomUUID()}/holds/${long}/release`).expect(400)],
    ] as const;
    expect(problems.flatMap(([method, path, code, problem]) => undeclared(method, path, code, problem))).toEqual([]);
    expect(problems.map(([, , , problem]) => problem.body.errors)).toEqual([
      [{ field: 'userId', rule: 'maxLength', message: 'userId must be shorter than or equal to 100 characters' }],
      [{ field: 'holdId', rule: 'maxLength', message: 'holdId must be shorter than or equal to 100 characters' }],
    ]);
    // A path no route has stays a 404, as it is with a shorter segment.
    expect((await testApp.http().get(`/v1/accounts/${long}/nothing`).expect(404)).body).toMatchObject({ code: 'NOT_FOUND' });
  });

  it("answers a path that is not valid percent-encoding as validation does, naming the parameter (or the path) and the rule, not with Fastify's code", async () => {
    const problems = [
      ['GET', '/v1/accounts/{userId}/balance', 'VALIDATION_FAILED', await testApp.http().get('/v1/accounts/%E0%A4%A/balance').expect(400)],
      ['POST', '/v1/accounts/{userId}/holds/{holdId}/release', 'VALIDATION_FAILED', await testApp.http().post(`/v1/accounts/${randomUUID()}/holds/%FF/release`).expect(400)],
    ] as const;
    expect(problems.flatMap(([method, path, code, problem]) => undeclared(method, path, code, problem))).toEqual([]);
    const rule = { rule: 'percentEncoding', message: expect.stringContaining('percent-encoded UTF-8') as unknown };
    expect(problems.map(([, , , problem]) => problem.body.errors)).toEqual([[{ field: 'userId', ...rule }], [{ field: 'holdId', ...rule }]]);
    // A path no route has is refused alike, naming the path: it cannot be read to say that no route has it.
    const nowhere = await testApp.http().get('/v1/nothing/%E0%A4%A').expect(400);
    expect(nowhere.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'path', ...rule }] });
    expect(JSON.stringify([nowhere.body, ...problems.map(([, , , problem]) => problem.body)])).not.toMatch(/FST_|url component/);
  });

  it("describes the two limits of a hold's expiresInSeconds, the configured one and the cap it may be set to, and answers each as described", async () => {
    const property = document.components.schemas['HoldRequest']?.properties?.['expiresInSeconds'];
    expect(property?.maximum).toBe(HOLD_TTL_SECONDS_MAX);
    for (const words of ['HOLD_TTL_MAX', '86400', 'HOLD_TTL_OUT_OF_RANGE', String(HOLD_TTL_SECONDS_MAX), 'VALIDATION_FAILED']) expect(property?.description).toContain(words);
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const beyondSetting = await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 1, expiresInSeconds: 86_401 }).expect(400);
    const beyondCap = await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 1, expiresInSeconds: HOLD_TTL_SECONDS_MAX + 1 }).expect(400);
    expect([...undeclared('POST', '/v1/accounts/{userId}/holds', 'HOLD_TTL_OUT_OF_RANGE', beyondSetting), ...undeclared('POST', '/v1/accounts/{userId}/holds', 'VALIDATION_FAILED', beyondCap)]).toEqual([]);
    expect(beyondSetting.body).toMatchObject({ max: 86_400 });
  });

  it('declares the refusals of tokens that holds set aside on every operation that spends them', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 80 }).expect(201);
    const problems = [
      ['POST', '/v1/accounts/{userId}/usage', 'INSUFFICIENT_AVAILABLE_BALANCE', await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 30 }).expect(409)],
      ['POST', '/v1/admin/accounts/{userId}/adjustments', 'INSUFFICIENT_AVAILABLE_BALANCE', await testApp.http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: -50, reason: 'correction' }).expect(409)],
      ['POST', '/v1/accounts/{userId}/holds', 'INSUFFICIENT_AVAILABLE_BALANCE', await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 30 }).expect(409)],
    ] as const;
    expect(problems.flatMap(([method, path, code, problem]) => undeclared(method, path, code, problem))).toEqual([]);
  });
});
