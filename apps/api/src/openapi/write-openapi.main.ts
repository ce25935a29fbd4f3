import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadAuthConfig, resolveAuthSettings } from '@app/auth';
import { loadConfig } from '../config/app.config.js';
import { createApp } from '../create-app.js';

/**
 * Writes the OpenAPI document the service serves (`GET /docs-json`) to the file named by the first
 * argument, for the contract linter and the client generator (`npm run lint:openapi`,
 * `npm run client:generate`). The application is created with the service's own wiring and asked
 * over HTTP (Fastify's inject); it is not started, so no database is needed: the document is built
 * from the controllers and DTOs, not from data.
 */
async function main(): Promise<void> {
  const target = process.argv[2];
  if (target === undefined) throw new Error('usage: write-openapi <file>');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'token-ledger-openapi-'));
  try {
    const settings = { NODE_ENV: 'development', LOG_LEVEL: 'silent', DATA_DIR: dataDir, DATABASE_URL: 'postgres://openapi@127.0.0.1:1/unused' };
    const config = loadConfig(settings);
    const auth = await resolveAuthSettings(loadAuthConfig(settings));
    const app = await createApp({ config, databaseUrl: settings.DATABASE_URL, logger: pino({ level: 'silent' }), openApiUi: false, auth });
    const response = await app.getHttpAdapter().getInstance().inject({ method: 'GET', url: '/docs-json' });
    if (response.statusCode !== 200) throw new Error(`GET /docs-json answered ${response.statusCode}: ${response.body}`);
    await writeFile(target, `${JSON.stringify(JSON.parse(response.body), null, 2)}\n`);
    await app.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
