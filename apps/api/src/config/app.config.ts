import { plainToInstance, Transform } from 'class-transformer';
import { IsBoolean, IsDefined, IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, ValidateIf, validateSync } from 'class-validator';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, ValidateNested, type ValidationError } from 'class-validator';
import { Validate, ValidatorConstraint, type ValidationArguments, type ValidatorConstraintInterface } from 'class-validator';
import { DEFAULT_TOKEN_PACKAGES, MOCK_BEHAVIOURS, PAYMENT_FAULT_POINTS, PAYMENT_PROVIDERS, STRIPE_API_URL, type MockBehaviour, type PaymentFaultPoint, type PaymentProviderName } from '@app/payments';
import type { StripeSettings } from '@app/payments';
import { HOLD_TTL_SECONDS_MAX, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN, PURCHASE_LIFETIME_DAYS_MAX } from '@app/ledger';

const toBoolean = ({ value }: { value: unknown }) => (value === 'true' ? true : value === 'false' ? false : value);
const toInteger = ({ value }: { value: unknown }) => (typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value);
const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
/** `90s`, `30m`, `1h`, `500ms`, or a number of milliseconds. */
const toDurationMs = ({ value }: { value: unknown }) => {
  const match = typeof value === 'string' ? /^(\d+)(ms|s|m|h)?$/.exec(value) : null;
  return match === null ? value : Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? 'ms'] ?? Number.NaN);
};
const fromJson = ({ value }: { value: unknown }) => {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
};

/** One token package of TOKEN_PACKAGES: `{"id":"starter","tokens":100,"price":500,"currency":"USD"}` (price in minor units). */
export class TokenPackageConfig {
  @Matches(/^[a-z0-9][a-z0-9-]{0,63}$/, { message: 'id must be 1-64 lower-case letters, digits or dashes' })
  id!: string;

  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  tokens!: number;

  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  price!: number;

  @Matches(/^[A-Z]{3}$/, { message: 'currency must be an ISO 4217 code such as USD' })
  currency!: string;

  /** The lifetime of the tokens bought, in days from the capture; absent: they never expire. */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(PURCHASE_LIFETIME_DAYS_MAX)
  expiresInDays?: number;

  /** Their draw-down priority (lower is spent first); absent: LOT_PRIORITY_DEFAULT. */
  @IsOptional()
  @IsInt()
  @Min(LOT_PRIORITY_MIN)
  @Max(LOT_PRIORITY_MAX)
  priority?: number;
}

/** TOKEN_PACKAGES text -> TokenPackageConfig instances (validated as such); anything else is left for the validators to refuse. */
function toTokenPackages({ value }: { value: unknown }): unknown {
  const parsed = fromJson({ value });
  if (!Array.isArray(parsed)) return parsed;
  return parsed.map((item: unknown) => (typeof item === 'object' && item !== null && !(item instanceof TokenPackageConfig) ? plainToInstance(TokenPackageConfig, item) : item));
}

/** A setting for tests of the built service: refused unless NODE_ENV=test. */
@ValidatorConstraint({ name: 'onlyInTests' })
class OnlyInTests implements ValidatorConstraintInterface {
  validate(_value: unknown, validation: ValidationArguments): boolean {
    return (validation.object as AppConfig).NODE_ENV === 'test';
  }

  defaultMessage(validation: ValidationArguments): string {
    return `${validation.property} is for crash tests: it needs NODE_ENV=test`;
  }
}

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** An origin as browsers send it: scheme, host and an optional port. */
const ORIGIN = /^https?:\/\/[^\s/?#*,]+$/;
const toOriginList = ({ value }: { value: unknown }) =>
  typeof value === 'string'
    ? value
        .split(',')
        .map((origin) => origin.trim())
        .filter((origin) => origin !== '')
    : value;

/** `postgres://` or `postgresql://`, then a host (user info, port, database and parameters optional). */
const POSTGRES_URL = /^postgres(ql)?:\/\/([^@/?#\s]+@)?(\[[\da-fA-F:.]+\]|[^@/?#\s:[\]]+)(:\d{1,5})?(\/[^\s?#]*)?(\?\S*)?$/;

/** Signs the mock provider's webhooks when PAYMENT_WEBHOOK_SECRET is unset outside production. */
export const DEVELOPMENT_WEBHOOK_SECRET = 'development-only-mock-webhook-secret';

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

  /** The address to listen on: loopback unless set, so an unconfigured instance is not on the network (a container sets 0.0.0.0). */
  @IsString()
  @MinLength(1)
  HOST = '127.0.0.1';

  /** A PostgreSQL server to use; when unset the service starts an embedded PostgreSQL. */
  @IsOptional()
  @Matches(POSTGRES_URL, { message: 'DATABASE_URL must be a URL such as postgres://user:password@host:5432/database' })
  DATABASE_URL?: string;

  /**
   * Production runs on the embedded PostgreSQL only when this says so: it is one machine's database
   * (no replica, no managed backups), which suits a single-machine deployment and nothing larger.
   */
  @Transform(toBoolean)
  @IsBoolean()
  EMBEDDED_POSTGRES_IN_PRODUCTION = false;

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

  /**
   * `json`: one JSON object a line (what log shippers read); `pretty`: coloured text through pino-pretty
   * (a development dependency, so not installed by `npm ci --omit=dev`); `auto`: pretty when
   * NODE_ENV=development and the output is a terminal, JSON otherwise.
   */
  @IsIn(LOG_FORMATS)
  LOG_FORMAT: LogFormat = 'auto';

  /** Serve Prometheus metrics (`GET /metrics`) on a port of their own, apart from the API. */
  @Transform(toBoolean)
  @IsBoolean()
  METRICS_ENABLED = true;

  /** The address of the metrics port: loopback unless set, so the numbers are not on the network by accident. */
  @IsString()
  @MinLength(1)
  METRICS_HOST = '127.0.0.1';

  /** The metrics port (0: any free port, logged at start). */
  @Transform(toInteger)
  @IsInt()
  @Min(0)
  @Max(65535)
  METRICS_PORT = 9464;

  /** `GET /health/ready` answers 503 while a read model is further behind the events than this: `30s`, `2m` or milliseconds. */
  @Transform(toDurationMs)
  @IsInt({ message: 'READY_MAX_PROJECTION_LAG must be a duration such as 30s, 2m or a number of milliseconds' })
  @Min(1_000)
  @Max(24 * 3_600_000)
  READY_MAX_PROJECTION_LAG = 60_000;

  /**
   * The longest a stop (SIGTERM, SIGINT) may take: past it the process exits with code 1, whatever
   * is still closing (a job's run waiting on its provider, a database that stopped answering). Every
   * write path survives a cut (a run cut short is finished by the next), so this is a bound, not a
   * loss. Below a container's grace period (Kubernetes: 30 s), so the process says why it stopped.
   */
  @Transform(toDurationMs)
  @IsInt({ message: 'SHUTDOWN_TIMEOUT must be a duration such as 25s, 1m or a number of milliseconds' })
  @Min(1_000)
  @Max(10 * 60_000)
  SHUTDOWN_TIMEOUT = 25_000;

  /**
   * Browser origins allowed to call the API (CORS), comma-separated: `https://app.example.com,http://localhost:5173`.
   * Unset: no CORS headers, so browsers refuse cross-origin calls.
   */
  @Transform(toOriginList)
  @IsArray()
  @Matches(ORIGIN, { each: true, message: 'CORS_ORIGINS must be origins such as https://app.example.com (scheme, host and port; no path, no *), comma-separated' })
  CORS_ORIGINS: string[] = [];

  /**
   * The payment provider adapter: `stripe` (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET), `mock`
   * (development and tests: it approves every capture, so production refuses it) or `none` (no
   * payments: the payment routes answer 501).
   */
  @IsIn(PAYMENT_PROVIDERS)
  PAYMENT_PROVIDER: PaymentProviderName = 'mock';

  /** Stripe's secret API key (`sk_live_…`, `sk_test_…`, or a restricted `rk_…`); required with PAYMENT_PROVIDER=stripe. */
  @ValidateIf((config: AppConfig) => config.PAYMENT_PROVIDER === 'stripe' || config.STRIPE_SECRET_KEY !== undefined)
  @IsDefined({ message: 'STRIPE_SECRET_KEY is required when PAYMENT_PROVIDER=stripe' })
  @Matches(/^(sk|rk)_(live|test)_[A-Za-z0-9_]{8,}$/, { message: 'STRIPE_SECRET_KEY must be a Stripe secret key (sk_live_…, sk_test_…, rk_…)' })
  STRIPE_SECRET_KEY?: string;

  /**
   * Production runs on a Stripe test-mode key (`sk_test_…`, `rk_test_…`) only when this says so: in
   * test mode Stripe's test cards are approved and no money moves, so every package would be free
   * tokens, as with the mock provider. For a staging deployment that runs NODE_ENV=production.
   */
  @Transform(toBoolean)
  @IsBoolean()
  STRIPE_TEST_MODE_IN_PRODUCTION = false;

  /** The signing secret of the Stripe webhook endpoint (`whsec_…`); required with PAYMENT_PROVIDER=stripe. */
  @ValidateIf((config: AppConfig) => config.PAYMENT_PROVIDER === 'stripe' || config.STRIPE_WEBHOOK_SECRET !== undefined)
  @IsDefined({ message: 'STRIPE_WEBHOOK_SECRET is required when PAYMENT_PROVIDER=stripe' })
  @Matches(/^whsec_[A-Za-z0-9_]{8,}$/, { message: 'STRIPE_WEBHOOK_SECRET must be a webhook signing secret (whsec_…)' })
  STRIPE_WEBHOOK_SECRET?: string;

  /** Capture an authorised PaymentIntent when its `payment_intent.amount_capturable_updated` webhook arrives, not only on the client's capture call. */
  @Transform(toBoolean)
  @IsBoolean()
  STRIPE_AUTO_CAPTURE = true;

  /** Stripe's API; only tests point it elsewhere (a local fake). Production refuses plain http. */
  @Matches(/^https?:\/\/[^\s/?#]+\/?$/, { message: 'STRIPE_API_URL must be a URL such as https://api.stripe.com' })
  STRIPE_API_URL = STRIPE_API_URL;

  /** The SDK's retries of a Stripe call after a timeout, a connection error, a 409 or a 5xx (same idempotency key, exponential backoff). */
  @Transform(toInteger)
  @IsInt()
  @Min(0)
  @Max(5)
  STRIPE_MAX_NETWORK_RETRIES = 2;

  /** One Stripe HTTP attempt's timeout in milliseconds. */
  @Transform(toInteger)
  @IsInt()
  @Min(100)
  @Max(60_000)
  STRIPE_TIMEOUT_MS = 5_000;

  /** How the mock provider answers captures of new orders (demos and manual tests). */
  @IsIn(MOCK_BEHAVIOURS)
  PAYMENT_MOCK_BEHAVIOUR: MockBehaviour = 'approve';

  /** How long a payment may stay PENDING before the expiry job ends it: `1h`, `30m`, `90s` or milliseconds. */
  @Transform(toDurationMs)
  @IsInt({ message: 'PAYMENT_PENDING_TTL must be a duration such as 1h, 30m, 90s or a number of milliseconds' })
  @Min(1_000)
  @Max(7 * 24 * 3_600_000)
  PAYMENT_PENDING_TTL = 3_600_000;

  /** Run the pending-payment expiry job in this process. */
  @Transform(toBoolean)
  @IsBoolean()
  PAYMENT_JOBS_ENABLED = true;

  @Transform(toInteger)
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  PAYMENT_JOB_INTERVAL_MS = 60_000;

  /** How often the reconciliation job compares payments with the provider. */
  @Transform(toInteger)
  @IsInt()
  @Min(100)
  @Max(24 * 3_600_000)
  PAYMENT_RECONCILIATION_INTERVAL_MS = 300_000;

  /** How far back COMPLETED, FAILED and REFUNDED payments are compared with the provider: `72h`, `30m` or milliseconds. */
  @Transform(toDurationMs)
  @IsInt({ message: 'PAYMENT_RECONCILIATION_LOOKBACK must be a duration such as 72h, 30m or a number of milliseconds' })
  @Min(60_000)
  @Max(90 * 24 * 3_600_000)
  PAYMENT_RECONCILIATION_LOOKBACK = 72 * 3_600_000;

  /** How old (or early) a signed webhook's timestamp may be, in seconds. */
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  @Max(3_600)
  PAYMENT_WEBHOOK_TOLERANCE_SECONDS = 300;

  /** Crash tests of the built service: SIGKILL at this point of the payment flows. Refused unless NODE_ENV=test. */
  @ValidateIf((config: AppConfig) => config.PAYMENT_CRASH_AT !== undefined)
  @IsIn(PAYMENT_FAULT_POINTS)
  @Validate(OnlyInTests)
  PAYMENT_CRASH_AT?: PaymentFaultPoint;

  /** A hold's time to live when the request names none: `15m`, `90s`, `1h` or milliseconds (whole seconds, at most HOLD_TTL_MAX). */
  @Transform(toDurationMs)
  @IsInt({ message: 'HOLD_TTL_DEFAULT must be a duration such as 15m, 90s or a number of milliseconds' })
  @Min(1_000)
  @Max(HOLD_TTL_SECONDS_MAX * 1_000)
  HOLD_TTL_DEFAULT = 15 * 60_000;

  /** The longest time to live a hold request may name (`expiresInSeconds`). */
  @Transform(toDurationMs)
  @IsInt({ message: 'HOLD_TTL_MAX must be a duration such as 24h, 30m or a number of milliseconds' })
  @Min(1_000)
  @Max(HOLD_TTL_SECONDS_MAX * 1_000)
  HOLD_TTL_MAX = 24 * 3_600_000;

  /** Run the credit expiry job (holds and lot remainders past their expiry) in this process. */
  @Transform(toBoolean)
  @IsBoolean()
  CREDIT_EXPIRY_JOB_ENABLED = true;

  @Transform(toInteger)
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  CREDIT_EXPIRY_JOB_INTERVAL_MS = 10_000;

  /** The token packages on sale, as a JSON array; clients name a package, never a price. */
  @Transform(toTokenPackages)
  @IsArray({ message: 'TOKEN_PACKAGES must be a JSON array of {id, tokens, price, currency}' })
  @ArrayMinSize(1)
  @ArrayMaxSize(100)
  @ArrayUnique((item: TokenPackageConfig) => item.id, { message: 'TOKEN_PACKAGES ids must be unique' })
  @ValidateNested({ each: true })
  TOKEN_PACKAGES: TokenPackageConfig[] = DEFAULT_TOKEN_PACKAGES.map((item) => Object.assign(new TokenPackageConfig(), item));

  /**
   * HMAC-SHA256 key of the mock provider's webhooks; unset, a development default applies. Only the
   * mock's route reads it, and production refuses the mock, so production needs none.
   */
  @ValidateIf((config: AppConfig) => config.PAYMENT_WEBHOOK_SECRET !== undefined)
  @IsString()
  @MinLength(16)
  PAYMENT_WEBHOOK_SECRET?: string;

  /** How long an Idempotency-Key and its response are kept (at least 24 hours). */
  @Transform(toInteger)
  @IsInt()
  @Min(24)
  @Max(24 * 30)
  IDEMPOTENCY_KEY_TTL_HOURS = 24;

  /**
   * How long a request holds its Idempotency-Key before a repeat may take it over (the first is
   * presumed dead). A takeover never does the work twice: it finds the first attempt's events.
   */
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  @Max(3_600)
  IDEMPOTENCY_LOCK_SECONDS = 60;

  /**
   * The most one purchase recorded directly (`POST /v1/accounts/{userId}/purchases`, by a service)
   * may credit; more is 400 AMOUNT_OUT_OF_RANGE naming `amount` and the cap.
   */
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  PURCHASE_TOKENS_MAX = 1_000_000;

  /**
   * How many payments one user may have open (PENDING, before their expiry) at once; one more is 409
   * TOO_MANY_PENDING_PAYMENTS, decided on the user's stream so racing requests cannot pass it.
   */
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  @Max(1_000)
  PENDING_PAYMENTS_MAX = 10;

  /**
   * Limit requests per client address and per credential (429 RATE_LIMITED with Retry-After). Counted
   * in each process; turn off only where something in front already limits, or for benchmarks.
   */
  @Transform(toBoolean)
  @IsBoolean()
  RATE_LIMIT_ENABLED = true;

  /** The counting window of both rate limits. */
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  @Max(3_600)
  RATE_LIMIT_WINDOW_SECONDS = 60;

  /** Requests one client address may make per window, on every route (the socket's address; behind a proxy, the proxy's). */
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  RATE_LIMIT_PER_IP_MAX = 6_000;

  /** Requests one credential (a JWT subject or an API key) may make per window. */
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  RATE_LIMIT_PER_CREDENTIAL_MAX = 3_000;
}

/** The Stripe adapter's settings, when PAYMENT_PROVIDER=stripe (loadConfig has checked both secrets are there). */
export function stripeSettingsOf(config: AppConfig): StripeSettings | undefined {
  if (config.PAYMENT_PROVIDER !== 'stripe') return undefined;
  if (config.STRIPE_SECRET_KEY === undefined || config.STRIPE_WEBHOOK_SECRET === undefined) throw new ConfigError(['STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are required when PAYMENT_PROVIDER=stripe']);
  return {
    secretKey: config.STRIPE_SECRET_KEY,
    webhookSecret: config.STRIPE_WEBHOOK_SECRET,
    autoCapture: config.STRIPE_AUTO_CAPTURE,
    apiUrl: config.STRIPE_API_URL,
    maxNetworkRetries: config.STRIPE_MAX_NETWORK_RETRIES,
    timeoutMs: config.STRIPE_TIMEOUT_MS,
    webhookToleranceSeconds: config.PAYMENT_WEBHOOK_TOLERANCE_SECONDS,
  };
}

/** The mock provider's webhook secret; null when another provider is configured (its route then answers PROVIDER_NOT_CONFIGURED). */
export function webhookSecretOf(config: AppConfig): string | null {
  if (config.PAYMENT_PROVIDER !== 'mock') return null;
  return config.PAYMENT_WEBHOOK_SECRET ?? DEVELOPMENT_WEBHOOK_SECRET;
}

/** Every problem found in the settings, one line each; the message lists them all at once. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

const KEYS = Object.keys(new AppConfig()).concat('DATABASE_URL', 'EVENTSTORE_URL', 'PAYMENT_WEBHOOK_SECRET', 'PAYMENT_CRASH_AT', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET');
/** Every variable loadConfig reads (`.env.example` lists them; its spec checks). */
export const APP_CONFIG_VARIABLES: readonly string[] = KEYS;
/** Shown in errors as `(hidden)`: a secret is named, never printed. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['PAYMENT_WEBHOOK_SECRET', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET']);
/** Connection strings: shown without their password. */
const URL_KEYS: ReadonlySet<string> = new Set(['DATABASE_URL', 'EVENTSTORE_URL']);

export function loadConfig(environment: NodeJS.ProcessEnv): AppConfig {
  const present = Object.fromEntries(KEYS.filter((key) => environment[key] !== undefined && environment[key] !== '').map((key) => [key, environment[key]]));
  const config = plainToInstance(AppConfig, present);
  const errors = validateSync(config, { whitelist: true });
  // Each variable is named with its value as given (`2h`, not the 7200000 read from it), so the operator finds what they wrote.
  const given = (key: string) => describeValue(key, present[key]);
  const problems = errors.map((error) => `${error.property}=${given(error.property)}: ${constraintsOf(error).join('; ')}`);
  // Judged together only when each is valid alone: a value that is no duration is reported once, above.
  const ttlsValid = !errors.some((error) => error.property === 'HOLD_TTL_DEFAULT' || error.property === 'HOLD_TTL_MAX');
  if (ttlsValid && (config.HOLD_TTL_DEFAULT > config.HOLD_TTL_MAX || config.HOLD_TTL_DEFAULT % 1_000 !== 0 || config.HOLD_TTL_MAX % 1_000 !== 0)) {
    problems.push(`HOLD_TTL_DEFAULT=${given('HOLD_TTL_DEFAULT')}, HOLD_TTL_MAX=${given('HOLD_TTL_MAX')}: both whole seconds, the default at most the maximum`);
  }
  // A payment that changed longer ago than the look-back when a run comes is never compared again:
  // the window must span the time between runs, twice over (a run may end late, or fail once).
  const reconciliationValid = !errors.some((error) => error.property === 'PAYMENT_RECONCILIATION_LOOKBACK' || error.property === 'PAYMENT_RECONCILIATION_INTERVAL_MS');
  if (reconciliationValid && config.PAYMENT_RECONCILIATION_LOOKBACK < 2 * config.PAYMENT_RECONCILIATION_INTERVAL_MS) {
    problems.push(
      `PAYMENT_RECONCILIATION_LOOKBACK=${given('PAYMENT_RECONCILIATION_LOOKBACK')}, PAYMENT_RECONCILIATION_INTERVAL_MS=${given('PAYMENT_RECONCILIATION_INTERVAL_MS')}: a look-back of ${config.PAYMENT_RECONCILIATION_LOOKBACK} ms must be at least twice the interval of ${config.PAYMENT_RECONCILIATION_INTERVAL_MS} ms, or payments that change between two runs are never compared with the provider`,
    );
  }
  problems.push(...portClashes(config, errors));
  problems.push(...stripePriceProblems(config, errors));
  problems.push(...checkAppConfig(config));
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * Stripe's three-decimal currencies (Stripe's docs, Supported currencies): it takes their amounts
 * in thousandths, but only with the last digit 0, for its payment partners.
 */
const STRIPE_THREE_DECIMAL_CURRENCIES: ReadonlySet<string> = new Set(['BHD', 'JOD', 'KWD', 'OMR', 'TND']);

/**
 * Currencies Stripe takes in minor units but charges only in whole units of (Stripe's support note
 * "Deprecation of fractional ISK charges and refunds", in force since 14 April 2023: ISK amounts
 * must be evenly divisible by 100, else `invalid_charge_amount_no_decimal_compatible`).
 */
const STRIPE_WHOLE_UNIT_CURRENCIES: ReadonlySet<string> = new Set(['ISK']);

/**
 * Package prices Stripe refuses whatever the buyer does: with PAYMENT_PROVIDER=stripe, a price in a
 * three-decimal currency that is not a multiple of 10, or in ISK not a multiple of 100, would be
 * refused at every purchase of it (502 PROVIDER_REJECTED), so the start refuses it, naming the
 * package. Stripe's minimum charge is not checked: it depends on the account's settlement currency,
 * which the service does not know.
 */
function stripePriceProblems(config: AppConfig, errors: readonly ValidationError[]): string[] {
  if (config.PAYMENT_PROVIDER !== 'stripe' || errors.some((error) => error.property === 'TOKEN_PACKAGES' || error.property === 'PAYMENT_PROVIDER')) return [];
  return config.TOKEN_PACKAGES.flatMap((offer) => {
    if (STRIPE_THREE_DECIMAL_CURRENCIES.has(offer.currency) && offer.price % 10 !== 0) {
      return [`TOKEN_PACKAGES: package ${JSON.stringify(offer.id)} costs ${offer.price} ${offer.currency}: Stripe takes ${offer.currency} in thousandths with the last digit 0 (a multiple of 10), and refuses any other amount`];
    }
    if (STRIPE_WHOLE_UNIT_CURRENCIES.has(offer.currency) && offer.price % 100 !== 0) {
      return [`TOKEN_PACKAGES: package ${JSON.stringify(offer.id)} costs ${offer.price} ${offer.currency}: Stripe takes ${offer.currency} in hundredths but charges only whole units (a multiple of 100), and refuses any other amount`];
    }
    return [];
  });
}

/**
 * Ports the service would take twice: the HTTP server's (HOST:PORT), the metrics server's when served
 * (METRICS_HOST:METRICS_PORT) and the embedded PostgreSQL's without DATABASE_URL (loopback:
 * EMBEDDED_POSTGRES_PORT). Two on one port clash when their addresses overlap: the same address, or
 * either a wildcard (`0.0.0.0`, `::`: every address); loopback names (`localhost`, `127.0.0.1`, `::1`)
 * overlap each other. A clash stops the start with the second bind reading as "in use by another
 * process"; it is named here instead. Port 0 (any free port) clashes with nothing, and a setting
 * refused above is left out.
 */
function portClashes(config: AppConfig, errors: readonly ValidationError[]): string[] {
  const refused = (key: string) => errors.some((error) => error.property === key);
  const listeners = [
    { port: 'PORT', host: 'HOST', on: !refused('HOST') },
    { port: 'METRICS_PORT', host: 'METRICS_HOST', on: config.METRICS_ENABLED === true && !refused('METRICS_ENABLED') && !refused('METRICS_HOST') },
    { port: 'EMBEDDED_POSTGRES_PORT', host: undefined, on: config.DATABASE_URL === undefined },
  ] as const;
  const live = listeners
    .filter((listener) => listener.on && !refused(listener.port) && config[listener.port] !== 0)
    .map((listener) => ({ ...listener, address: listener.host === undefined ? 'localhost' : config[listener.host] }));
  return live.flatMap((one, index) =>
    live
      .slice(index + 1)
      .filter((other) => config[other.port] === config[one.port] && addressesOverlap(one.address, other.address))
      .map((other) => `${one.port} and ${other.port} are both ${config[one.port]} on overlapping addresses: the service listens on each of them, so they must differ`),
  );
}

const WILDCARD_ADDRESSES: ReadonlySet<string> = new Set(['0.0.0.0', '::', '']);
const LOOPBACK_ADDRESSES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '::1']);

function addressesOverlap(one: string, other: string): boolean {
  if (WILDCARD_ADDRESSES.has(one) || WILDCARD_ADDRESSES.has(other)) return true;
  if (LOOPBACK_ADDRESSES.has(one) && LOOPBACK_ADDRESSES.has(other)) return true;
  return one.toLowerCase() === other.toLowerCase();
}

/**
 * What production refuses among values that are each valid: the mock provider, which approves every
 * capture, and a Stripe test-mode key unless allowed (its test cards move no money); the embedded
 * PostgreSQL unless allowed; the development webhook secret, which is public.
 */
export function checkAppConfig(config: AppConfig): string[] {
  if (config.NODE_ENV !== 'production') return [];
  const problems: string[] = [];
  if (config.PAYMENT_PROVIDER === 'mock') {
    problems.push('PAYMENT_PROVIDER=mock: the mock provider approves every capture (free tokens); production needs a real provider, or PAYMENT_PROVIDER=none for no payments');
  }
  if (config.DATABASE_URL === undefined && config.EMBEDDED_POSTGRES_IN_PRODUCTION !== true) {
    problems.push('DATABASE_URL=(unset): production needs a PostgreSQL server; the embedded one is for a single machine only, allowed with EMBEDDED_POSTGRES_IN_PRODUCTION=true');
  }
  // The secret key goes to whatever answers there, and what answers decides captures: in production, Stripe's own API only.
  if (config.PAYMENT_PROVIDER === 'stripe' && config.STRIPE_API_URL.replace(/\/$/, '') !== STRIPE_API_URL) {
    problems.push(`STRIPE_API_URL=${JSON.stringify(config.STRIPE_API_URL)}: production talks to Stripe's API only (${STRIPE_API_URL}): another host would get the secret key and decide captures`);
  }
  if (config.PAYMENT_PROVIDER === 'stripe' && /^(sk|rk)_test_/.test(config.STRIPE_SECRET_KEY ?? '') && config.STRIPE_TEST_MODE_IN_PRODUCTION !== true) {
    problems.push('STRIPE_SECRET_KEY=(hidden): a test-mode key, whose test cards move no money (free tokens); production needs a live key (sk_live_…, rk_live_…), or STRIPE_TEST_MODE_IN_PRODUCTION=true for a staging deployment');
  }
  if (config.PAYMENT_WEBHOOK_SECRET === DEVELOPMENT_WEBHOOK_SECRET) problems.push('PAYMENT_WEBHOOK_SECRET=(hidden): it is the public development secret; production needs its own');
  return problems;
}

function describeValue(key: string, value: unknown): string {
  if (value === undefined) return '(unset)';
  if (SECRET_KEYS.has(key)) return '(hidden)';
  if (URL_KEYS.has(key)) return withoutPassword(value);
  return JSON.stringify(value);
}

/** The URL with its password replaced by `***`; text that does not parse may hold one anywhere, so it is hidden whole. */
function withoutPassword(value: unknown): string {
  try {
    const url = new URL(String(value));
    if (url.password !== '') url.password = '***';
    return JSON.stringify(url.toString());
  } catch {
    return '(hidden: not a URL)';
  }
}
/** The rules a value broke, including those of nested values (a token package), named by their path. */
function constraintsOf(error: ValidationError, path = ''): string[] {
  const own = Object.values(error.constraints ?? {}).map((message) => (path === '' ? message : `${path}: ${message}`));
  const nested = (error.children ?? []).flatMap((child) => constraintsOf(child, path === '' ? child.property : `${path}.${child.property}`));
  return [...own, ...nested];
}
