import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { migrateDatabase, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@app/database';
import pg from 'pg';
import { runScenario, SCENARIOS, type ScenarioResult } from './scenarios.js';
import { renderResults } from './report.js';
import { runMain } from './command-line.js';

/**
 * `npm run bench:store [-- --only appends-c32,latency] [--seconds 10]`
 *
 * Starts one PostgreSQL (embedded, durable default settings; or the server in DATABASE_URL, whose
 * user needs CREATEDB), then runs each scenario in its own child process on its own fresh, migrated
 * database, so each scenario's peak RSS is its own. Results go to stdout and into docs/benchmarks.md
 * between the results markers, with the command that made them.
 */
const CHILD_FLAG = '--scenario';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      seconds: { type: 'string', default: '10' },
      scenario: { type: 'string' },
      url: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) throw new Error(`--seconds must be a number from 1 to 600, not ${values.seconds}`);
  if (values.scenario !== undefined) {
    const result = await runScenario(values.scenario, { url: values.url ?? '', seconds });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const names = values.only === undefined ? Object.keys(SCENARIOS) : values.only.split(',');
  const unknown = names.filter((name) => SCENARIOS[name] === undefined);
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);

  const server = await startServer();
  const results: ScenarioResult[] = [];
  try {
    for (const name of names) {
      process.stderr.write(`running ${name}...\n`);
      const result = await inFreshDatabase(server.adminUrl, (url) => runChild(name, url, seconds));
      for (const measurement of result.measurements) process.stderr.write(`  ${measurement.name}: ${measurement.value.toFixed(measurement.unit === 'ms' ? 2 : 0)} ${measurement.unit}\n`);
      process.stderr.write(`  peak RSS ${result.peakRssMiB.toFixed(0)} MiB\n`);
      results.push(result);
    }
  } finally {
    await server.stop();
  }
  const command = `npm run bench:store${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const rendered = renderResults(results, { command, environment: environment(server.version) });
  process.stdout.write(`${rendered}\n`);
  if (!values['no-write']) await writeResults(rendered);
}

type Server = { readonly adminUrl: string; readonly version: string; stop(): Promise<void> };

async function startServer(): Promise<Server> {
  const external = process.env.DATABASE_URL;
  let embedded: EmbeddedPostgresServer | undefined;
  let parent: string | undefined;
  let adminUrl: string;
  if (external !== undefined && external !== '') {
    adminUrl = external;
  } else {
    parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-bench-'));
    // As root the server runs as the postgres user, who must be able to enter this directory.
    await chmod(parent, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: path.join(parent, 'pg'), secretsDirectory: path.join(parent, 'secrets'), port: 54000 + Math.floor(Math.random() * 1_000), database: 'bench', persistent: false });
    adminUrl = embedded.adminUrl;
  }
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  const version = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? 'unknown';
  await client.end();
  return {
    adminUrl,
    version: `PostgreSQL ${version}${embedded === undefined ? ' (DATABASE_URL)' : ' (embedded, default settings: fsync and synchronous_commit on)'}`,
    async stop() {
      await embedded?.stop();
      if (parent !== undefined) await rm(parent, { recursive: true, force: true });
    },
  };
}

async function inFreshDatabase<T>(adminUrl: string, work: (url: string) => Promise<T>): Promise<T> {
  const name = `token_ledger_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    await migrateDatabase(url.toString());
    return await work(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

function runChild(scenario: string, url: string, seconds: number): Promise<ScenarioResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [process.argv[1] as string, CHILD_FLAG, scenario, '--url', url, '--seconds', String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const last = output.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`scenario ${scenario} exited with ${code}`));
      else resolve(JSON.parse(last) as ScenarioResult);
    });
  });
}

function environment(version: string | undefined): string {
  const cpu = cpus();
  return [`${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}`, `${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`, `Node ${process.version}`, version ?? 'PostgreSQL (DATABASE_URL)'].join(', ');
}

const START_MARKER = '<!-- results:start -->';
const END_MARKER = '<!-- results:end -->';

async function writeResults(rendered: string): Promise<void> {
  const file = path.resolve(process.cwd(), 'docs/benchmarks.md');
  const current = await readFile(file, 'utf8').catch(() => `# Benchmarks\n\n${START_MARKER}\n${END_MARKER}\n`);
  const start = current.indexOf(START_MARKER);
  const end = current.indexOf(END_MARKER);
  if (start < 0 || end < start) throw new Error(`${file} has no ${START_MARKER} ... ${END_MARKER} section to write into`);
  await writeFile(file, `${current.slice(0, start + START_MARKER.length)}\n${rendered}\n${current.slice(end)}`);
  process.stderr.write(`results written to ${file}\n`);
}

runMain(main);
