import { startTestApp, type TestApp } from './support/test-app.js';

let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp({ PAYMENT_JOBS_ENABLED: 'false', TOKEN_PACKAGES: '[{"id":"mini","tokens":10,"price":99,"currency":"EUR","expiresInDays":30,"priority":50},{"id":"big","tokens":5000,"price":15000,"currency":"USD"}]' });
});

afterAll(async () => {
  await testApp.close();
});

describe('GET /v1/packages', () => {
  it('lists the configured packages, in order, with the terms of the tokens they credit, to a caller without credentials', async () => {
    const response = await testApp.anonymous().get('/v1/packages').expect(200);
    expect(response.body).toEqual({
      data: [
        { id: 'mini', tokens: 10, price: 99, currency: 'EUR', provider: 'mock', expiresInDays: 30, priority: 50 },
        // Without terms of its own: tokens that never expire, at paid credit's default priority.
        { id: 'big', tokens: 5000, price: 15000, currency: 'USD', provider: 'mock', expiresInDays: null, priority: 100 },
      ],
    });
  });

  it('answers an authenticated caller the same', async () => {
    const user = await testApp.as('user');
    const response = await user.get('/v1/packages').expect(200);
    expect(response.body.data.map((item: { id: string }) => item.id)).toEqual(['mini', 'big']);
  });

  it('is in the OpenAPI document with its response shape', async () => {
    const document = (await testApp.anonymous().get('/docs-json').expect(200)).body as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { schemas: Record<string, { required?: string[] }> } };
    expect(Object.keys(document.paths['/v1/packages'] ?? {})).toEqual(['get']);
    expect(document.components.schemas['TokenPackageResponse']?.required).toEqual(['id', 'tokens', 'price', 'currency', 'provider', 'expiresInDays', 'priority']);
  });
});

describe('the Stripe webhook route with another provider', () => {
  it('answers 404 PROVIDER_NOT_CONFIGURED and does nothing', async () => {
    const response = await testApp.anonymous().post('/v1/payments/webhooks/stripe').set('content-type', 'application/json').set('stripe-signature', 't=1,v1=00').send('{"id":"evt_1"}').expect(404);
    expect(response.body).toMatchObject({ code: 'PROVIDER_NOT_CONFIGURED' });
  });
});
