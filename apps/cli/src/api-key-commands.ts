import { API_KEY_ROLES, API_KEY_SCOPES, apiKeyNameProblem, ApiKeyRepository, CLI_CALLER, isApiKeyScope, isDateTime, parseApiKey, type ApiKeyRole, type ApiKeyScope } from '@app/auth';
import { InvalidArgumentError, type Command } from 'commander';
import { oneOf } from './arguments.js';
import type { Connection } from './database.js';

const API_KEY_ID_PATTERN = /^[0-9a-f]{24}$/;

/** `api-keys create | list | revoke`: service API keys, on the database directly (`withConnection`). */
export function addApiKeyCommands(program: Command, withConnection: (work: (connection: Connection) => Promise<void>) => Promise<void>): void {
  const apiKeys = program.command('api-keys').description('service API keys (X-API-Key): create, list, revoke');

  apiKeys
    .command('create')
    .description('create a key; its secret is printed once and stored only as a SHA-256 hash')
    .requiredOption('--name <name>', 'a name unique among active keys, e.g. the backend that uses it', keyName)
    .requiredOption('--role <role>', `one of ${API_KEY_ROLES.join(', ')}`, oneOf(API_KEY_ROLES))
    .option('--scopes <list>', `comma-separated, from ${API_KEY_SCOPES.join(', ')} (default: every scope of the role)`, scopeList)
    .option('--expires-in <duration>', 'the key stops working after this: 12h, 90d (default: never)', expiryIn)
    .option('--expires-at <time>', 'the key stops working at this time, e.g. 2027-06-30T00:00:00Z', expiryAt)
    .option('--replaces <id>', 'the id of a key of the same role this one replaces: both share Idempotency-Keys (a rotation; revoke the old key once nothing retries with it)')
    .action((options: { name: string; role: ApiKeyRole; scopes?: ApiKeyScope[]; expiresIn?: Date; expiresAt?: Date; replaces?: string }) => {
      if (options.expiresIn !== undefined && options.expiresAt !== undefined) throw new InvalidArgumentError('give --expires-in or --expires-at, not both');
      const replaces = options.replaces === undefined ? null : keyId('--replaces', options.replaces);
      return withConnection(async ({ pool }) => {
        const expiresAt = options.expiresIn ?? options.expiresAt ?? null;
        const { key, record } = await new ApiKeyRepository(pool).create({ name: options.name, role: options.role, scopes: options.scopes, expiresAt, replaces, createdBy: CLI_CALLER });
        const replacing = record.idempotencyScope === record.id ? '' : `, sharing the Idempotency-Keys of ${record.idempotencyScope}`;
        process.stderr.write(
          `created ${record.id} (${record.name}, ${record.role}, scopes ${record.scopes.join(',')}, expires ${record.expiresAt?.toISOString() ?? 'never'}${replacing}); the key below is shown only now:\n`,
        );
        process.stdout.write(`${key}\n`);
      });
    });

  apiKeys
    .command('list')
    .description('every key: id, role, name, scopes, created (and by whom), expiry, last used, whose Idempotency-Keys it shares (a replacement), revoked (and by whom)')
    .action(() =>
      withConnection(async ({ pool }) => {
        const records = await new ApiKeyRepository(pool).list();
        if (records.length === 0) process.stdout.write('no API keys\n');
        for (const record of records) {
          process.stdout.write(
            `${record.id} ${record.role.padEnd(7)} ${record.name} scopes ${record.scopes.join(',')} created ${record.createdAt.toISOString()} by ${record.createdBy ?? '-'} expires ${record.expiresAt?.toISOString() ?? 'never'} last used ${record.lastUsedAt?.toISOString() ?? '-'}${record.idempotencyScope === record.id ? '' : ` idempotency keys of ${record.idempotencyScope}`}${record.revokedAt === null ? '' : ` REVOKED ${record.revokedAt.toISOString()} by ${record.revokedBy ?? '-'}`}\n`,
          );
        }
      }),
    );

  apiKeys
    .command('revoke')
    .description('revoke a key by its id (the 24 hex characters after tlk_)')
    .argument('<id>', 'the key id (the whole key is taken too: only its id is read)')
    .action((given: string) => {
      const id = keyId('the key id', given);
      return withConnection(async ({ pool }) => {
        const outcome = await new ApiKeyRepository(pool).revoke(id, CLI_CALLER);
        if (outcome === 'not_found') throw new Error(`no API key ${id}`);
        process.stdout.write(outcome === 'revoked' ? `revoked ${id}\n` : `${id} was already revoked\n`);
      });
    });
}

function scopeList(value: string): ApiKeyScope[] {
  const scopes = value.split(',').map((scope) => scope.trim());
  const unknown = scopes.filter((scope) => !isApiKeyScope(scope));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown scope ${unknown.join(', ')}; scopes are ${API_KEY_SCOPES.join(', ')}`);
  return scopes.filter(isApiKeyScope);
}

/** `12h` or `90d`, up to ten years. */
function expiryIn(value: string): Date {
  const match = /^(\d{1,6})([hd])$/.exec(value);
  const hours = match === null ? Number.NaN : Number(match[1]) * (match[2] === 'd' ? 24 : 1);
  if (!(hours >= 1 && hours <= 10 * 366 * 24)) throw new InvalidArgumentError('must be a duration such as 12h or 90d, from 1 hour to 10 years');
  return new Date(Date.now() + hours * 3_600_000);
}

/** An RFC 3339 date-time with an offset naming a real instant, as the HTTP route takes (`isDateTime`: not 2027-02-29). */
function expiryAt(value: string): Date {
  if (!isDateTime(value)) throw new InvalidArgumentError('must be an RFC 3339 date and time with an offset (Z or ±hh:mm) naming a real instant, e.g. 2027-06-30T00:00:00Z');
  return new Date(value);
}

/** A name the key repository takes (trimmed first, as the HTTP route does), refused here as a usage error. */
function keyName(value: string): string {
  const name = value.trim();
  const problem = apiKeyNameProblem(name);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return name;
}

/**
 * An API key's id: its 24 hex characters, or read from a whole key (`tlk_<id>_<secret>`), so that a
 * key pasted by mistake still names its id. Checked in the action, not as commander's argument
 * parser, whose refusal quotes the value: the refusal must not print back what may hold a secret.
 */
function keyId(what: string, value: string): string {
  const id = parseApiKey(value)?.id ?? value;
  if (!API_KEY_ID_PATTERN.test(id)) throw new InvalidArgumentError(`${what} must be an API key id: the 24 lower-case hex characters after tlk_ (what was given is not repeated here)`);
  return id;
}
