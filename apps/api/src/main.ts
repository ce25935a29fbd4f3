import path from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { checkDatabaseReachable, EMBEDDED_SERVICE_DATABASE, loadEnvFile, migrateDatabase, startEmbeddedPostgres, StartupError, type EmbeddedPostgresServer } from '@app/database';
import type { Logger } from 'pino';
import { AuthConfigError, resolveAuthSettings } from '@app/auth';
import { ConfigError, type AppConfig } from './config/app.config.js';
import { loadServiceSettings } from './config/service-settings.js';
import { createApp } from './create-app.js';
import { registerHttpDrain } from './http/http-drain.js';
import { createServiceLogger } from './http/service-logger.js';
import { startMetricsServer, type MetricsServer } from './metrics/metrics-server.js';
import { ServiceMetrics } from './metrics/service-metrics.js';

/** Longest the requests in flight at SIGTERM may take before their connections are cut: at most half of SHUTDOWN_TIMEOUT. */
const DRAIN_TIMEOUT_MS = 8_000;

/**
 * A repeat of the stop's signal within this long is the same request, not a second one: Ctrl+C under
 * `npm start` reaches node twice (from the terminal to the process group, and forwarded by npm), and
 * a process manager that signals the whole group (systemd's KillMode=control-group) does the same.
 */
const REPEATED_SIGNAL_MS = 2_000;

/** What is running, for the signal handlers: they may arrive at any point of the start. */
type Running = { embedded?: EmbeddedPostgresServer; app?: NestFastifyApplication; drain?: (timeoutMs: number) => Promise<void>; metrics?: MetricsServer };

/**
 * Starts the service: on the embedded PostgreSQL when DATABASE_URL is unset, migrations first, then
 * the HTTP API with the projections. SIGINT/SIGTERM stop HTTP first (requests in flight finish),
 * then the workers and the app, then the database.
 */
async function main(): Promise<void> {
  // A .env file (or the one ENV_FILE names) supplies what the environment does not set.
  loadEnvFile();
  // Every setting is checked before anything starts, and every problem is reported in one message.
  const { config, authConfig } = loadServiceSettings(process.env);
  const logger = createServiceLogger(config);
  const auth = await resolveAuthSettings(authConfig);
  if (auth.secretsSource === 'development') {
    logger.warn({ directory: path.resolve(config.DATA_DIR, 'secrets') }, 'using development secrets (not for production); mint a token with: npm run cli -- token --role admin --sub <uuid>');
  }
  // NODE_ENV defaults to development, which allows what production refuses: said at every start, so a deployment that forgot it is told.
  if ((process.env.NODE_ENV ?? '') === '') {
    logger.warn('NODE_ENV is unset: running as development, which allows development secrets and the mock payment provider; a deployment sets NODE_ENV=production');
  }
  if (config.PAYMENT_PROVIDER === 'mock') {
    logger.warn('PAYMENT_PROVIDER=mock: the mock payment provider approves every capture, tokens for no money (NODE_ENV=production refuses it)');
  }
  const running: Running = {};
  stopOnSignals(running, logger, config.SHUTDOWN_TIMEOUT);

  let databaseUrl = config.DATABASE_URL;
  if (databaseUrl === undefined) {
    const dataDir = path.resolve(config.DATA_DIR, 'postgres');
    logger.info({ dataDir, port: config.EMBEDDED_POSTGRES_PORT }, 'starting embedded PostgreSQL');
    running.embedded = await startEmbeddedPostgres({
      dataDir,
      secretsDirectory: path.resolve(config.DATA_DIR, 'secrets'),
      port: config.EMBEDDED_POSTGRES_PORT,
      database: EMBEDDED_SERVICE_DATABASE,
      persistent: true,
      onLog: (message) => logger.debug({ component: 'postgres' }, message.trim()),
    });
    databaseUrl = running.embedded.url;
  } else {
    await checkDatabaseReachable(databaseUrl, 'DATABASE_URL');
  }

  try {
    await migrateDatabase(databaseUrl, (message) => logger.debug({ component: 'migrations' }, message));
    const metrics = new ServiceMetrics();
    running.app = await createApp({ config, databaseUrl, logger, openApiUi: true, auth, metrics });
    running.drain = registerHttpDrain(running.app);
    const port = await listen(running.app, config);
    if (config.METRICS_ENABLED) running.metrics = await listenForMetrics(metrics, config);
    logger.info({ url: `http://${config.HOST}:${port}`, docs: `http://${config.HOST}:${port}/docs`, metrics: running.metrics?.url ?? 'off' }, 'Token Ledger is listening');
  } catch (error) {
    await running.metrics?.close();
    await running.app?.close().catch(() => undefined);
    await running.embedded?.stop();
    throw error;
  }
}

/** Listens on HOST:PORT; the port bound (PORT=0 picks a free one). */
async function listen(app: NestFastifyApplication, config: AppConfig): Promise<number> {
  try {
    await app.listen({ port: config.PORT, host: config.HOST });
    const address = app.getHttpServer().address();
    return typeof address === 'object' && address !== null ? address.port : config.PORT;
  } catch (error) {
    const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
    if (code === 'EADDRINUSE') throw new StartupError('PORT', `port ${config.PORT} on ${config.HOST} is already in use by another process`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new StartupError('HOST', `${config.HOST} is not an address of this machine (${String(code)})`);
    throw error;
  }
}

async function listenForMetrics(metrics: ServiceMetrics, config: AppConfig): Promise<MetricsServer> {
  try {
    return await startMetricsServer(metrics, { host: config.METRICS_HOST, port: config.METRICS_PORT });
  } catch (error) {
    const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
    if (code === 'EADDRINUSE') throw new StartupError('METRICS_PORT', `port ${config.METRICS_PORT} on ${config.METRICS_HOST} is already in use by another process (METRICS_ENABLED=false turns the metrics port off)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new StartupError('METRICS_HOST', `${config.METRICS_HOST} is not an address of this machine (${String(code)})`);
    throw error;
  }
}

/**
 * SIGINT/SIGTERM: HTTP stops accepting and drains the requests in flight while the projections and
 * jobs still run (a request waiting on its read model gets it); then the app closes (workers, event
 * store, pool) and the embedded PostgreSQL stops. A signal during the start stops what has started.
 * The whole stop is bounded by `timeoutMs` (SHUTDOWN_TIMEOUT), and a second signal (after
 * REPEATED_SIGNAL_MS) ends it at once: either exits with code 1. The embedded PostgreSQL goes with the
 * process: its exit handler signals it, or its stop, once begun, already has.
 */
function stopOnSignals(running: Running, logger: Logger, timeoutMs: number): void {
  let stoppingSince: number | undefined;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < REPEATED_SIGNAL_MS) {
        logger.info({ signal }, 'already stopping');
        return;
      }
      logger.warn({ signal }, 'a second signal during the stop: exiting now');
      process.exit(1);
    }
    stoppingSince = Date.now();
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error({ timeoutMs }, 'the stop did not finish within SHUTDOWN_TIMEOUT: exiting now');
      process.exit(1);
    }, timeoutMs).unref();
    void (async () => {
      try {
        await running.drain?.(Math.min(DRAIN_TIMEOUT_MS, timeoutMs / 2));
        await running.metrics?.close();
        await running.app?.close();
        await running.embedded?.stop();
        logger.info('stopped');
        process.exit(0);
      } catch (error) {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      }
    })();
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  // The logger may not exist yet (bad configuration), so the reason goes to stderr as text: for the
  // operator's mistakes one message naming the variable, for anything else the stack.
  const expected = error instanceof ConfigError || error instanceof AuthConfigError;
  const text = expected ? error.message : error instanceof StartupError ? `cannot start: ${error.message}` : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`${text}\n`);
  process.exit(1);
});
