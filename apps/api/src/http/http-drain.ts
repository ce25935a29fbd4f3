import type { NestFastifyApplication } from '@nestjs/platform-fastify';

const IDLE_SWEEP_INTERVAL_MS = 50;

/**
 * Stops the HTTP server the way a deploy wants it stopped: no new connection is accepted, every
 * request in flight runs to its normal answer (with `Connection: close`, so the client does not
 * send another on that connection), each keep-alive connection is closed as soon as it falls idle,
 * and after `timeoutMs` whatever is left is cut. Only then do the workers behind the requests (the
 * projections, the jobs, the event store and the pool) stop: app.close() afterwards.
 *
 * Register it before the app listens: it adds a hook.
 */
export function registerHttpDrain(app: NestFastifyApplication): (timeoutMs: number) => Promise<void> {
  const fastify = app.getHttpAdapter().getInstance();
  let draining = false;
  fastify.addHook('onSend', async (_request, reply) => {
    if (draining) void reply.header('connection', 'close');
  });
  return async (timeoutMs) => {
    draining = true;
    const server = fastify.server;
    // A response that left just before draining began leaves its connection idle: sweep such ones too.
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_INTERVAL_MS);
    const cut = setTimeout(() => server.closeAllConnections(), timeoutMs);
    try {
      await fastify.close();
    } finally {
      clearInterval(sweep);
      clearTimeout(cut);
    }
  };
}
