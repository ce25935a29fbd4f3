import { ENDPOINT_ACTIONS } from '@app/auth';
import { isPublicRoute } from '../apps/api/src/auth/access-control.js';
import { idempotencyKeyHandling } from '../apps/api/src/http/idempotency/idempotency.hooks.js';
import { ERROR_CODES, PROBLEM_TYPES } from '../apps/api/src/http/problem-types.js';
import { PROBLEM_MEDIA_TYPE } from '../apps/api/src/openapi/contract.js';
import { startTestApp, type TestApp } from './support/test-app.js';

type Schema = { $ref?: string; allOf?: Schema[]; properties?: Record<string, Schema>; enum?: string[]; required?: string[] };
type Response = { description: string; content?: Record<string, { schema?: Schema; examples?: Record<string, { value: { code: string; status: number } }> }> };
type Parameter = { name: string; in: string };
type Operation = { operationId?: string; summary?: string; tags?: string[]; security?: unknown[]; parameters?: Parameter[]; responses: Record<string, Response> };
type Document = {
  info: { license?: { name: string } };
  servers?: { url: string }[];
  tags?: { name: string; description?: string }[];
  security?: unknown[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};

let testApp: TestApp;
let document: Document;

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
  return schema.allOf[1]?.properties?.['code']?.enum;
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
    expect(document.info.license?.name).toBe('UNLICENSED');
    expect(document.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    const publicOperations = operations().filter(({ method, path }) => isPublicRoute(method, path));
    expect(publicOperations.map(({ method, path }) => `${method} ${path}`).sort()).toEqual(['GET /health', 'GET /v1/packages', 'POST /v1/payments/webhooks/mock', 'POST /v1/payments/webhooks/stripe']);
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
      expect({ where, codes: problemCodes(operation.responses['429']) }).toEqual({ where, codes: ['RATE_LIMITED'] });
    }
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

  it('documents every code of the error-code table that a caller can receive, each under the status the table gives it', () => {
    const documented = new Map<string, Set<number>>();
    for (const { operation } of operations()) {
      for (const [status, response] of Object.entries(operation.responses)) {
        for (const code of problemCodes(response) ?? []) documented.set(code, (documented.get(code) ?? new Set()).add(Number(status)));
      }
    }
    for (const code of ERROR_CODES) {
      const type = PROBLEM_TYPES[code];
      const publicCode = type.publicCode ?? code;
      expect({ publicCode, statuses: [...(documented.get(publicCode) ?? [])] }).toEqual({ publicCode, statuses: [type.status] });
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

  it('types the body of every success response (no response a client would type as having no content)', () => {
    for (const { method, path, operation } of operations()) {
      for (const [status, response] of Object.entries(operation.responses).filter(([status]) => /^2/.test(status))) {
        const schemas = Object.values(response.content ?? {}).map((media) => media.schema);
        expect({ where: `${method} ${path} ${status}`, typed: schemas.length > 0 && schemas.every((schema) => schema !== undefined) }).toEqual({ where: `${method} ${path} ${status}`, typed: true });
      }
    }
  });
});
