import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProjectionsAdmin } from '@app/operations';
import { loadAuthConfig, mintToken, parseTtl, resolveAuthSettings, ROLES, type Role } from '@app/auth';
import type { RebuildView } from '@app/projections';
import { SEED_EVENTS_MAX, SEED_USERS_MAX } from '@app/testing';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { addApiKeyCommands } from './api-key-commands.js';
import { integer, oneOf, printable, ttl, uuid } from './arguments.js';
import { addAuditCommands } from './audit-commands.js';
import type { Connection } from './database.js';

const PROGRESS_INTERVAL_MS = 200;

/** The command ran and failed, or was refused: the database cannot be reached, no key has the id, a difference was found. */
export const EXIT_FAILURE = 1;
/** The command line is wrong: an unknown command or option, a missing or invalid argument or option (or an ENV_FILE that cannot be read). */
export const EXIT_USAGE = 2;

const EXIT_CODES_HELP = `
Exit codes: 0 done; 1 the command failed or was refused (the database cannot be reached, no such
projection or key, a difference found, a bundle not intact); 2 usage error (an unknown command or
option, a missing or invalid argument or option, an ENV_FILE that cannot be read), and nothing was
done.`;

/**
 * Runs the CLI on `argv` (as process.argv: node, the script, then the words) and answers its exit
 * code: what a command set (EXIT_FAILURE for a difference found), EXIT_USAGE for a wrong command line,
 * EXIT_FAILURE for any other error. `npm run cli` and the tests run it alike. A usage error is an
 * `InvalidArgumentError` thrown by an action, or one commander found (it has printed it, with the
 * command's help); any other error is printed here, its message only.
 */
export async function runProgram(argv: readonly string[], writeError: (text: string) => void = (text) => void process.stderr.write(text)): Promise<number> {
  try {
    await createProgram(writeError).parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (error) {
    // Messages may quote stored text (an event's type, a bundle's head): its control characters escaped, so it cannot write lines of its own.
    if (error instanceof InvalidArgumentError) {
      writeError(`error: ${printable(error.message)}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_USAGE;
    writeError(`error: ${printable(error instanceof Error ? error.message : String(error))}\n`);
    return EXIT_FAILURE;
  }
}

/**
 * The commands of `npm run cli -- <command>`: the operators' tool. It works on the database directly through the
 * same libraries as the service (never through HTTP), so it also works while the service is down.
 * Commander throws instead of exiting (`exitOverride`), so that `runProgram` decides every exit code.
 */
export function createProgram(writeError: (text: string) => void = (text) => void process.stderr.write(text)): Command {
  const program = new Command('token-ledger')
    .description('Token Ledger admin CLI (DATABASE_URL, or the embedded PostgreSQL under DATA_DIR)')
    .showHelpAfterError()
    .version(`token-ledger ${packageVersion()}`, '-V, --version', 'print the version')
    .addHelpText('after', EXIT_CODES_HELP)
    .configureOutput({ writeErr: writeError, outputError: (text, write) => write(text) });
  // Set before the commands are added: commander copies both to each subcommand when it is created.
  program.exitOverride();

  program
    .command('migrate')
    .description('apply the database migrations')
    .action(() =>
      withConnection(
        async ({ url }) => {
          const { migrateDatabase } = await import('./database-tools.js');
          await migrateDatabase(url, (message) => process.stdout.write(`${message}\n`));
          process.stdout.write('migrations applied\n');
        },
        { schema: 'any' },
      ),
    );

  const projections = program.command('projections').description('projection status and rebuilds');

  projections
    .command('status')
    .description('checkpoint, head, lag and state of every projection')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withAdmin(async (admin) => {
        const statuses = await admin.status();
        if (options.json === true) {
          // The runner's state is the service process's; read from here it would say stopped for a running projection.
          process.stdout.write(`${JSON.stringify(statuses.map((status) => ({ ...status, state: status.state === 'stopped' ? 'unknown' : status.state })), null, 2)}\n`);
          return;
        }
        for (const status of statuses) {
          process.stdout.write(
            `${status.name}: ${status.state}, checkpoint ${status.checkpoint ?? '-'}, head ${status.head ?? '-'}, lag ${status.lagEvents ?? '?'} events / ${status.lagSeconds.toFixed(1)} s` +
              `${status.rebuild === null ? '' : `, rebuild ${status.rebuild.id} ${status.rebuild.phase}${status.rebuild.interrupted ? ' (interrupted: its process stopped; the next rebuild cleans it up)' : ''}`}\n`,
          );
          if (status.failure !== null) {
            const { position, eventType, attempts, firstFailedAt, error } = status.failure;
            process.stdout.write(`  failed at ${position} (${eventType}), attempt ${attempts} since ${firstFailedAt}: ${error}\n`);
          }
        }
        process.stdout.write('(a projection runs in the service process: here, without it, the state reads stopped)\n');
      }),
    );

  projections
    .command('rebuild')
    .description('rebuild one projection, or all one after another, into shadow tables and swap them in')
    .argument('[name]', 'a projection, as `projections status` names it')
    .action((name: string | undefined) =>
      withAdmin(async (admin) => {
        const names = name === undefined ? admin.projections.map((projection) => projection.name) : [name];
        for (const each of names) {
          const finished = await rebuildWithProgress(admin, each);
          if (finished.phase !== 'completed') throw new Error(`rebuild ${finished.id} of ${each} failed: ${finished.error ?? 'unknown error'}`);
        }
      }),
    );

  const accounts = program.command('accounts').description('one account: replay its stream, verify its read models');

  accounts
    .command('replay')
    .description("the user's stream with the running balance")
    .argument('<userId>', 'a user id (UUID)', uuid)
    .action((userId: string) =>
      withAdmin(async (admin) => {
        const { lines, refusal } = await admin.replayAccount(userId);
        if (lines.length === 0 && refusal === null) process.stdout.write(`no events for ${userId}\n`);
        for (const line of lines) {
          const amount = line.amount > 0 ? `+${line.amount}` : String(line.amount);
          // Type and time are stored text like the description: a line of their own is not theirs to write.
          process.stdout.write(`#${line.revision} ${line.position} ${printable(line.occurredAt)} ${printable(line.type).padEnd(16)} ${amount.padStart(12)} balance ${line.balance}${line.description === null ? '' : ` ${printable(JSON.stringify(line.description))}`}\n`);
        }
        // The lines before it are printed: where the stream stops making sense is what the operator came for.
        if (refusal !== null) throw new Error(`the ledger cannot replay the stream of ${userId} from revision ${refusal.revision}: ${refusal.message}`);
      }),
    );

  accounts
    .command('verify')
    .description('replay vs read model for one account or all (--all); exit code 1 on any difference')
    .argument('[userId]', 'a user id (UUID)', uuid)
    .option('--all', 'every account')
    .action((userId: string | undefined, options: { all?: boolean }) => {
      if ((userId === undefined) === (options.all !== true)) throw new InvalidArgumentError('give a userId or --all, not both');
      return withAdmin(async (admin) => {
        let findings;
        if (userId !== undefined) {
          findings = await admin.verifyAccount(userId);
        } else {
          const { SingleBar } = await import('./database-tools.js');
          const bar = new SingleBar({ format: 'verify [{bar}] {value}/{total} accounts', stream: process.stderr });
          let started = false;
          try {
            const report = await admin.verifyAll((done, total) => {
              if (!started) bar.start(total, 0);
              started = true;
              bar.update(done);
            });
            findings = report.findings;
            bar.stop();
            process.stdout.write(`${report.accounts} accounts verified\n`);
          } finally {
            bar.stop();
          }
        }
        for (const finding of findings) process.stdout.write(`${finding.userId} ${finding.projection ?? 'stream'} ${finding.kind}: ${printable(finding.detail)}\n`);
        process.stdout.write(findings.length === 0 ? 'no differences\n' : `${findings.length} difference(s)\n`);
        if (findings.length > 0) process.exitCode = EXIT_FAILURE;
      });
    });

  addAuditCommands(program);

  program
    .command('seed')
    .description('append a synthetic history decided by the real ledger (deterministic with --seed)')
    .requiredOption('--users <n>', `accounts (1..${SEED_USERS_MAX})`, integer(1, SEED_USERS_MAX))
    .requiredOption('--events <m>', `events in all (0..${SEED_EVENTS_MAX})`, integer(0, SEED_EVENTS_MAX))
    .option('--seed <s>', 'generator seed (0..4294967295)', integer(0, 4_294_967_295), 1)
    .action((options: { users: number; events: number; seed: number }) =>
      withConnection(async ({ store }) => {
        const { SingleBar, seedHistory } = await import('./database-tools.js');
        const bar = new SingleBar({ format: 'seed [{bar}] {value}/{total} events', stream: process.stderr });
        bar.start(options.events, 0);
        const started = Date.now();
        let seeded;
        try {
          seeded = await seedHistory(store, { users: options.users, events: options.events, seed: options.seed, onProgress: (written) => bar.update(written) });
        } finally {
          bar.stop();
        }
        const seconds = (Date.now() - started) / 1000;
        // A repeat of the same seed finds its events there already and writes none.
        const found = seeded.eventsDecided - seeded.eventsWritten;
        const already = found === 0 ? '' : ` (${found} more were there already, from the same seed)`;
        process.stdout.write(`seeded ${seeded.eventsWritten} events over ${options.users} accounts (seed ${options.seed}) in ${seconds.toFixed(1)} s${already}\n`);
      }),
    );

  program
    .command('token')
    .description('mint a JWT the service accepts (development: signed with the secret under DATA_DIR, or AUTH_JWT_SECRET)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, oneOf(ROLES))
    .requiredOption('--sub <uuid>', 'the subject: for the user role, the user id it may act for', uuid)
    .option('--ttl <duration>', 'lifetime: seconds, or 15m, 12h, 7d (at most 30d)', ttl, '12h')
    .action(async (options: { role: Role; sub: string; ttl: string }) => {
      const config = loadAuthConfig(process.env);
      // Production tokens come from the identity provider; a CLI that signs any role there is a backdoor.
      // This and the JWKS below are refusals of the environment, not of the command line: exit 1.
      if (config.NODE_ENV === 'production') throw new Error('NODE_ENV=production: tokens come from your identity provider, not from this command');
      // Before the development secret is read (or created) under DATA_DIR: a usage error does nothing.
      if (parseTtl(options.ttl) > config.AUTH_JWT_MAX_LIFETIME_SECONDS) {
        throw new InvalidArgumentError(`--ttl ${options.ttl} is longer than AUTH_JWT_MAX_LIFETIME_SECONDS (${config.AUTH_JWT_MAX_LIFETIME_SECONDS} s): the service would refuse the token`);
      }
      const { jwt } = await resolveAuthSettings(config);
      if (jwt.hs256Secret === undefined) throw new Error('the service verifies tokens with a JWKS (AUTH_JWKS_URL or AUTH_JWKS_FILE): its identity provider issues them');
      const token = await mintToken({ role: options.role, sub: options.sub, ttl: options.ttl, secret: jwt.hs256Secret, rolesClaim: jwt.rolesClaim, issuer: jwt.issuer, audience: jwt.audience });
      // A token signed for another DATA_DIR is refused with a 401 about the signature: say which secret signed this one.
      if (config.AUTH_JWT_SECRET === undefined) process.stderr.write(`signed with the development secret of DATA_DIR=${path.resolve(config.DATA_DIR)}: only a service started with this DATA_DIR accepts it\n`);
      process.stdout.write(`${token}\n`);
    });

  addApiKeyCommands(program, withConnection);

  return program;
}









async function rebuildWithProgress(admin: ProjectionsAdmin, name: string): Promise<RebuildView> {
  const started = await admin.startRebuild(name);
  process.stderr.write(`rebuild ${started.id} of ${name}\n`);
  const { SingleBar } = await import('./database-tools.js');
  const bar = new SingleBar({ format: `${name} [{bar}] {value}/{total} events | {phase} | {rate} events/s | ETA {eta_s}s`, stream: process.stderr });
  bar.start(Math.max(started.eventsTotal, 1), 0, { phase: started.phase, rate: 0, eta_s: '-' });
  let finished: RebuildView;
  try {
    finished = await new Promise<RebuildView>((resolve, reject) => {
      const timer = setInterval(() => {
        admin
          .getRebuild(started.id)
          .then((view) => {
            if (view === undefined) return;
            bar.setTotal(Math.max(view.eventsTotal, 1));
            bar.update(view.eventsDone, { phase: view.phase, rate: view.eventsPerSecond, eta_s: view.etaSeconds ?? '-' });
            // Interrupted: the session running it is gone (a lost connection, a failover), and with it the
            // rebuild, which could not record its own end: it would read unfinished for ever.
            if (view.phase === 'completed' || view.phase === 'failed' || view.interrupted) {
              clearInterval(timer);
              resolve(view);
            }
          })
          .catch((error: unknown) => {
            clearInterval(timer);
            reject(error instanceof Error ? error : new Error(String(error)));
          });
      }, PROGRESS_INTERVAL_MS);
    });
  } finally {
    bar.stop();
  }
  if (finished.interrupted) throw new Error(`rebuild ${finished.id} of ${name} was interrupted during ${finished.phase}: its database session ended before it finished, so the live tables were not changed; the next rebuild of ${name} drops what it left`);
  process.stdout.write(`${name}: ${finished.phase}, ${finished.eventsDone} events, ${finished.eventsPerSecond} events/s${finished.error === null ? '' : `: ${finished.error}`}\n`);
  return finished;
}

async function withConnection(work: (connection: Connection) => Promise<void>, options: { readonly schema?: 'current' | 'any' } = {}): Promise<void> {
  // Loaded when a command needs the database, so that `token` or `--version` answers without loading it.
  const { connect } = await import('./database-tools.js');
  const connection = await connect(options);
  try {
    await work(connection);
  } finally {
    await connection.close();
  }
}

function withAdmin(work: (admin: ProjectionsAdmin) => Promise<void>): Promise<void> {
  return withConnection(async ({ url, pool, store }) => {
    const { ProjectionsAdmin } = await import('./database-tools.js');
    const admin = new ProjectionsAdmin(store, pool, { connectionString: url, onLog: (message) => process.stderr.write(`${message}\n`) });
    try {
      await work(admin);
    } finally {
      await admin.beforeApplicationShutdown();
    }
  });
}



/** The version in the repository's package.json, found above this file (the sources run from apps/cli/src, the build from dist/apps/cli/src). */
function packageVersion(): string {
  for (let directory = path.dirname(fileURLToPath(import.meta.url)); ; directory = path.dirname(directory)) {
    const file = path.join(directory, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'token-ledger' && typeof manifest.version === 'string') return manifest.version;
    }
    if (path.dirname(directory) === directory) throw new Error('the CLI is not inside the token-ledger repository: no package.json of it above this file');
  }
}

