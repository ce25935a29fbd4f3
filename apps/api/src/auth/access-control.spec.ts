import { ApiKeyRepository, JwtVerifier } from '@app/auth';
import Fastify from 'fastify';
import type pg from 'pg';
import { pino } from 'pino';
import { registerAccessControl } from './access-control.js';

/** The start-up check that keeps every route classified: the request hooks treat an unlisted route as public. */
async function appWith(route: { method: 'GET' | 'POST'; url: string }): Promise<void> {
  const fastify = Fastify();
  registerAccessControl(fastify, {
    verifier: await JwtVerifier.create({ hs256Secret: 'x'.repeat(32), asymmetricAlgorithms: [], clockToleranceSeconds: 0, rolesClaim: 'role' }),
    apiKeys: new ApiKeyRepository({} as pg.Pool),
    paymentOwner: () => Promise.resolve(undefined),
    logger: pino({ level: 'silent' }),
  });
  fastify.route({ ...route, handler: () => ({}) });
  try {
    await fastify.ready();
  } finally {
    await fastify.close();
  }
}

describe('route classification', () => {
  it('refuses to start with a route that is neither in ENDPOINT_ACTIONS nor public', async () => {
    await expect(appWith({ method: 'GET', url: '/v1/accounts/:userId/secrets' })).rejects.toThrow('route GET /v1/accounts/:userId/secrets has no access rule');
    await expect(appWith({ method: 'POST', url: '/v1/accounts/:userId/balance' })).rejects.toThrow('has no access rule');
  });

  it('starts with listed and public routes', async () => {
    await expect(appWith({ method: 'GET', url: '/v1/accounts/:userId/balance' })).resolves.toBeUndefined();
    await expect(appWith({ method: 'GET', url: '/health' })).resolves.toBeUndefined();
  });
});
