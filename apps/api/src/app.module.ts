import { Module, type DynamicModule } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { TerminusModule } from '@nestjs/terminus';
import { TokenAccountsModule } from '@app/token-accounts';
import { DatabaseModule } from '@app/database';
import { EventSourcingModule, type EventStoreChoice } from '@app/event-sourcing';
import { OperationsModule } from '@app/operations';
import { AccountsController } from './accounts/accounts.controller.js';
import { HoldsController } from './accounts/holds.controller.js';
import { PURCHASE_TOKENS_MAX } from './accounts/purchase-limit.js';
import { AdminController } from './admin/admin.controller.js';
import { ApiKeysController } from './admin/api-keys.controller.js';
import { auditSigningKeyProvider } from './audit/audit-signing-key.js';
import { AuditController } from './audit/audit.controller.js';
import { ConfigError, type AppConfig } from './config/app.config.js';
import { DatabaseHealthIndicator, HealthController, READINESS_SETTINGS, ReadModelsHealthIndicator } from './health/health.controller.js';
import { ServiceMetrics } from './metrics/service-metrics.js';
import { APP_CLOCK } from './app-clock.js';
import { LeaderElection, PG_POOL } from '@app/database';
import { PaymentsModule } from '@app/payments';
import { ApiKeyRepository, type AuthSettings } from '@app/auth';
import { AUTH_SETTINGS } from './auth/auth-settings.js';
import type { Pool } from 'pg';
import { stripeSettingsOf, webhookSecretOf } from './config/app.config.js';
import { IdempotencyPurgeJob } from './http/idempotency/idempotency-purge.job.js';
import { IdempotencyLease } from './http/idempotency/idempotency-lease.js';
import { IdempotencyStore } from './http/idempotency/idempotency.store.js';
import { PackagesController } from './payments/packages.controller.js';
import { AccountPaymentsController, PaymentsController } from './payments/payments.controller.js';
import { WEBHOOK_SETTINGS } from './payments/webhook-signature.guard.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig, databaseUrl: string, auth: AuthSettings, metrics: ServiceMetrics, clock?: () => Date): DynamicModule {
    return {
      module: AppModule,
      imports: [
        DatabaseModule.forRoot({ url: databaseUrl, poolSizeMax: config.DATABASE_POOL_SIZE, onJobRun: (job, outcome, durationMs) => metrics.observeJobRun(job, outcome, durationMs) }),
        CqrsModule.forRoot(),
        TerminusModule.forRoot({ logger: false }),
        EventSourcingModule.forRoot({
          databaseUrl,
          projectionsEnabled: config.PROJECTIONS_ENABLED,
          readYourWritesTimeoutMs: config.READ_YOUR_WRITES_TIMEOUT_MS,
          eventStore: eventStoreChoiceOf(config),
          onAppendBatch: (appends) => metrics.appendBatchSize.observe(appends),
          onProjectionFailure: (projection, cause) => metrics.projectionFailures.inc({ projection, cause }),
          onProjectionFallback: (projection, from) => metrics.projectionFallbacks.inc({ projection, from }),
        }),
        TokenAccountsModule.forRoot({
          holdTtlSecondsDefault: config.HOLD_TTL_DEFAULT / 1_000,
          holdTtlSecondsMax: config.HOLD_TTL_MAX / 1_000,
          expiryJobEnabled: config.CREDIT_EXPIRY_JOB_ENABLED,
          expiryJobIntervalMs: config.CREDIT_EXPIRY_JOB_INTERVAL_MS,
          ...(clock === undefined ? {} : { now: clock }),
        }),
        OperationsModule,
        PaymentsModule.forRoot({
          provider: config.PAYMENT_PROVIDER,
          mockBehaviour: config.PAYMENT_MOCK_BEHAVIOUR,
          ...(config.PAYMENT_PROVIDER === 'stripe' ? { stripe: stripeSettingsOf(config) } : {}),
          packages: config.TOKEN_PACKAGES,
          pendingTtlMs: config.PAYMENT_PENDING_TTL,
          pendingPaymentsMax: config.PENDING_PAYMENTS_MAX,
          jobsEnabled: config.PAYMENT_JOBS_ENABLED,
          jobIntervalMs: config.PAYMENT_JOB_INTERVAL_MS,
          reconciliationIntervalMs: config.PAYMENT_RECONCILIATION_INTERVAL_MS,
          reconciliationLookbackMs: config.PAYMENT_RECONCILIATION_LOOKBACK,
          ...(config.PAYMENT_CRASH_AT === undefined ? {} : { crashAt: config.PAYMENT_CRASH_AT }),
          ...(clock === undefined ? {} : { now: clock }),
          onUnresolved: (source) => metrics.paymentsUnresolved.inc({ source }),
        }),
      ],
      controllers: [AccountsController, HoldsController, HealthController, AdminController, ApiKeysController, AuditController, PaymentsController, AccountPaymentsController, PackagesController],
      providers: [
        DatabaseHealthIndicator,
        ReadModelsHealthIndicator,
        { provide: READINESS_SETTINGS, useValue: { maxProjectionLagMs: config.READY_MAX_PROJECTION_LAG } },
        { provide: ServiceMetrics, useValue: metrics },
        { provide: APP_CLOCK, useValue: clock ?? (() => new Date()) },
        { provide: AUTH_SETTINGS, useValue: auth },
        { provide: WEBHOOK_SETTINGS, useValue: { secret: webhookSecretOf(config), toleranceSeconds: config.PAYMENT_WEBHOOK_TOLERANCE_SECONDS } },
        { provide: PURCHASE_TOKENS_MAX, useValue: config.PURCHASE_TOKENS_MAX },
        { provide: ApiKeyRepository, inject: [PG_POOL], useFactory: (pool: Pool) => new ApiKeyRepository(pool) },
        auditSigningKeyProvider(auth),
        { provide: IdempotencyLease, useFactory: () => new IdempotencyLease(databaseUrl) },
        {
          provide: IdempotencyStore,
          inject: [PG_POOL, IdempotencyLease],
          useFactory: (pool: Pool, lease: IdempotencyLease) =>
            new IdempotencyStore(pool, { ttlHours: config.IDEMPOTENCY_KEY_TTL_HOURS, lockSeconds: config.IDEMPOTENCY_LOCK_SECONDS, lease }),
        },
        {
          provide: IdempotencyPurgeJob,
          inject: [LeaderElection, IdempotencyStore],
          useFactory: (election: LeaderElection, store: IdempotencyStore) => new IdempotencyPurgeJob(election, store, config.PAYMENT_JOBS_ENABLED),
        },
      ],
    };
  }
}

function eventStoreChoiceOf(config: AppConfig): EventStoreChoice {
  if (config.EVENT_STORE === 'postgres') return { kind: 'postgres' };
  // loadConfig has refused this already; a config built by hand has not.
  if (config.EVENTSTORE_URL === undefined) throw new ConfigError(['EVENTSTORE_URL is required when EVENT_STORE=eventstoredb']);
  return { kind: 'eventstoredb', url: config.EVENTSTORE_URL };
}
