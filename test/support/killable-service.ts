import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildService, startServiceOn, stopServices, type ServiceProcess } from './service-process.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/** The built service of a spec that kills it, and what it runs on. */
export type KillableService = {
  /** The spec's own database (created before its tests, dropped after). */
  database(): TestDatabase;
  /** Runs the built service on the spec's database and data directory, with its settings and `extra`: the first start, or a restart after a kill. */
  start(extra?: Record<string, string>): Promise<ServiceProcess>;
  /** Stops (SIGTERM) every process started that still runs: for a spec whose next test must lead the workers. */
  stopAll(): Promise<void>;
};

/**
 * For a spec that runs the built service and kills it: the build, a database and a data directory of
 * its own, made before its tests (hooks registered here) and removed after them, every process it
 * started stopped first (one that never listened is killed by the start). `settings` are the service's environment at every start.
 */
export function killableService(name: string, settings: Record<string, string> = {}): KillableService {
  let database: TestDatabase | undefined;
  let dataDir: string | undefined;
  // Every process started: a test that fails before killing its process must not leave it running.
  const started: ServiceProcess[] = [];
  beforeAll(async () => {
    await buildService();
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), `token-ledger-${name}-`));
  }, 240_000);
  afterAll(async () => {
    await stopServices(started);
    await database?.drop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });
  const created = (): { readonly database: TestDatabase; readonly dataDir: string } => {
    if (database === undefined || dataDir === undefined) throw new Error(`${name}: the service's database is made in beforeAll`);
    return { database, dataDir };
  };
  return {
    database: () => created().database,
    async start(extra = {}) {
      const made = created();
      const running = await startServiceOn(made.database.url, made.dataDir, { ...settings, ...extra });
      started.push(running);
      return running;
    },
    stopAll: () => stopServices(started),
  };
}
