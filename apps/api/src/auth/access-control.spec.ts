import { ApiKeyRepository, JwtVerifier } from '@app/auth';
import Fastify, { type FastifyInstance } from 'fastify';
import type pg from 'pg';
import { pino } from 'pino';
import { registerAccessControl } from './access-control.js';

type Route = { method: 'GET' | 'POST'; url: string };

async function withAccessControl(fastify: FastifyInstance): Promise<void> {
  registerAccessControl(fastify, {
    verifier: await JwtVerifier.create({ hs256Secret: 'x'.repeat(32), asymmetricAlgorithms: [], clockToleranceSeconds: 0, rolesClaim: 'role' }),
    apiKeys: new ApiKeyRepository({} as pg.Pool),
    paymentOwner: () => Promise.resolve(undefined),
    logger: pino({ level: 'silent' }),
  });
}

/** The start-up checks that keep every route classified and guarded. */
async function appWith(route: Route, { addedBefore = false } = {}): Promise<void> {
  const fastify = Fastify();
  if (addedBefore) fastify.route({ ...route, handler: () => ({}) });
  await withAccessControl(fastify);
  if (!addedBefore) fastify.route({ ...route, handler: () => ({}) });
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

  it('refuses to start with a listed route added before the access control, which would have no hooks', async () => {
    await expect(appWith({ method: 'GET', url: '/v1/accounts/:userId/balance' }, { addedBefore: true })).rejects.toThrow(
      'route GET /v1/accounts/:userId/balance was added without its access hooks',
    );
    await expect(appWith({ method: 'GET', url: '/health' }, { addedBefore: true })).resolves.toBeUndefined();
  });

  it('guards each protected route, HEAD included, and leaves public ones open', async () => {
    const fastify = Fastify();
    await withAccessControl(fastify);
    fastify.route({ method: 'GET', url: '/v1/accounts/:userId/balance', handler: () => ({ balance: 0 }) });
    fastify.route({ method: 'GET', url: '/health', handler: () => ({ status: 'ok' }) });
    try {
      // light-my-request (inject) cannot load in Jest's ESM mode: a real socket instead.
      const base = await fastify.listen({ host: '127.0.0.1', port: 0 });
      const balance = `${base}/v1/accounts/6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40/balance`;
      expect((await fetch(balance)).status).toBe(401);
      expect((await fetch(balance, { method: 'HEAD' })).status).toBe(401);
      expect((await fetch(`${base}/health`)).status).toBe(200);
    } finally {
      await fastify.close();
    }
  });
});
