import { plainToInstance, Transform } from 'class-transformer';
import { IsBoolean, IsDefined, IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, ValidateIf, validateSync } from 'class-validator';

const toBoolean = ({ value }: { value: unknown }) => (value === 'true' ? true : value === 'false' ? false : value);
const toInteger = ({ value }: { value: unknown }) => (typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value);

/**
 * Every setting the service reads from the environment, validated at start: a bad value stops the
 * process with a message naming the variable and the rule.
 */
export class AppConfig {
  @IsIn(['development', 'test', 'production'])
  NODE_ENV: 'development' | 'test' | 'production' = 'development';

  @Transform(toInteger)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT = 3000;

  @IsString()
  @MinLength(1)
  HOST = '0.0.0.0';

  /** A PostgreSQL server to use; when unset the service starts an embedded PostgreSQL. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  DATABASE_URL?: string;

  /**
   * Where the events live: `postgres` (the database above) or `eventstoredb` (EVENTSTORE_URL). Read
   * models, projection checkpoints and snapshots are in PostgreSQL either way.
   */
  @IsIn(['postgres', 'eventstoredb'])
  EVENT_STORE: 'postgres' | 'eventstoredb' = 'postgres';

  /** An EventStoreDB / KurrentDB node or cluster: esdb://host:2113?tls=false, or esdb://h1:2113,h2:2113,h3:2113?nodePreference=leader. */
  @ValidateIf((config: AppConfig) => config.EVENT_STORE === 'eventstoredb' || config.EVENTSTORE_URL !== undefined)
  @IsDefined({ message: 'EVENTSTORE_URL is required when EVENT_STORE=eventstoredb' })
  @Matches(/^esdb(\+discover)?:\/\/\S+$/, { message: 'EVENTSTORE_URL must be an esdb:// or esdb+discover:// connection string' })
  EVENTSTORE_URL?: string;

  /** Where the embedded PostgreSQL keeps its data; survives restarts. */
  @IsString()
  @MinLength(1)
  DATA_DIR = '.data';

  @Transform(toInteger)
  @IsInt()
  @Min(1024)
  @Max(65535)
  EMBEDDED_POSTGRES_PORT = 54329;

  @Transform(toInteger)
  @IsInt()
  @Min(2)
  @Max(500)
  DATABASE_POOL_SIZE = 20;

  /** Run the projections in this process; turn off on API instances when a projector runs elsewhere. */
  @Transform(toBoolean)
  @IsBoolean()
  PROJECTIONS_ENABLED = true;

  /** Longest a write waits for its read models before it responds anyway. */
  @Transform(toInteger)
  @IsInt()
  @Min(0)
  @Max(60_000)
  READ_YOUR_WRITES_TIMEOUT_MS = 5_000;

  @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' = 'info';
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const KEYS = Object.keys(new AppConfig()).concat('DATABASE_URL', 'EVENTSTORE_URL');

export function loadConfig(environment: NodeJS.ProcessEnv): AppConfig {
  const present = Object.fromEntries(KEYS.filter((key) => environment[key] !== undefined && environment[key] !== '').map((key) => [key, environment[key]]));
  const config = plainToInstance(AppConfig, present);
  const errors = validateSync(config, { whitelist: true });
  if (errors.length > 0) {
    const lines = errors.map((error) => `${error.property}=${error.value === undefined ? '(unset)' : JSON.stringify(error.value)}: ${Object.values(error.constraints ?? {}).join('; ')}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return config;
}
