import path from 'node:path';
import { EMBEDDED_SERVICE_DATABASE, migrateDatabase, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@app/database';
import { pino } from 'pino';
import { AuthConfigError, loadAuthConfig, resolveAuthSettings } from '@app/auth';
import { ConfigError, loadConfig } from './config/app.config.js';
import { createApp } from './create-app.js';

/**
 * Starts the service: on the embedded PostgreSQL when DATABASE_URL is unset, migrations first, then
 * the HTTP API with the projections. SIGINT/SIGTERM close the app, then the database.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = pino({ level: config.LOG_LEVEL, base: { service: 'token-ledger' } });
  // Before the database: production without configured secrets stops here, naming what is missing.
  const auth = await resolveAuthSettings(loadAuthConfig(process.env));
  if (auth.secretsSource === 'development') {
    logger.warn({ directory: path.resolve(config.DATA_DIR, 'secrets') }, 'using development secrets (not for production); mint a token with: npm run cli -- token --role admin --sub <uuid>');
  }

  let embedded: EmbeddedPostgresServer | undefined;
  let databaseUrl = config.DATABASE_URL;
  if (databaseUrl === undefined) {
    const dataDir = path.resolve(config.DATA_DIR, 'postgres');
    logger.info({ dataDir, port: config.EMBEDDED_POSTGRES_PORT }, 'starting embedded PostgreSQL');
    embedded = await startEmbeddedPostgres({
      dataDir,
      port: config.EMBEDDED_POSTGRES_PORT,
      database: EMBEDDED_SERVICE_DATABASE,
      persistent: true,
      onLog: (message) => logger.debug({ component: 'postgres' }, message.trim()),
    });
    databaseUrl = embedded.url;
  }

  try {
    await migrateDatabase(databaseUrl, (message) => logger.debug({ component: 'migrations' }, message));
    const app = await createApp({ config, databaseUrl, logger, openApiUi: true, auth });
    await app.listen({ port: config.PORT, host: config.HOST });
    logger.info({ url: `http://localhost:${config.PORT}`, docs: `http://localhost:${config.PORT}/docs` }, 'Token Ledger is listening');

    let stopping = false;
    const shutdown = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      void (async () => {
        await app.close();
        await embedded?.stop();
        logger.info('stopped');
        process.exit(0);
      })();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

main().catch((error: unknown) => {
  // The logger may not exist yet (bad configuration), so the reason goes to stderr as text.
  process.stderr.write(`${error instanceof ConfigError || error instanceof AuthConfigError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
