import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { CommandHandling, PaymentStreams, ReadModelConsistency } from '@app/event-sourcing';
import { PG_POOL } from '@app/database';
import type { Pool } from 'pg';
import { CapturePaymentHandler } from './capture-payment/capture-payment.command.js';
import { PaymentExpiryJob } from './expiry/payment-expiry.job.js';
import { PaymentJobsScheduler } from './expiry/payment-jobs.scheduler.js';
import { InitiatePaymentHandler } from './initiate-payment/initiate-payment.command.js';
import { RefundPaymentHandler } from './refund-payment/refund-payment.command.js';
import { SettlePaymentHandler } from './settle-payment/settle-payment.command.js';
import { WebhookDeliveries } from './settle-payment/webhook-deliveries.js';
import { killAt, NO_FAULTS } from './payment-faults.js';
import { PaymentReconciliationJob } from './reconciliation/payment-reconciliation.job.js';
import { PaymentWorkflow } from './payment-workflow.js';
import { PAYMENTS_OPTIONS, STRIPE_WEBHOOKS, type PaymentsOptions } from './payments.tokens.js';
import { MockPaymentProvider } from './provider/mock-payment-provider.js';
import { NoPaymentProvider } from './provider/no-payment-provider.js';
import { PAYMENT_PROVIDER, type PaymentProvider } from './provider/payment-provider.port.js';
import { stripeCallDeadlineMs, stripeClient, StripePaymentProvider, type StripeSettings } from './provider/stripe/stripe-payment-provider.js';
import { StripeDisputeList } from './provider/stripe/stripe-dispute-list.js';
import { StripeRefundList } from './provider/stripe/stripe-refund-list.js';
import { StripeWebhooks } from './provider/stripe/stripe-webhooks.js';
import { HandleStripeEventHandler } from './settle-payment/stripe-event.command.js';
import { ListPackagesHandler } from './queries/package.queries.js';
import { GetPaymentHandler, ListPaymentsHandler } from './queries/payment.queries.js';

/** Payments: the provider adapter, the payment use cases, their queries, the expiry and reconciliation jobs. Needs EventSourcingModule and DatabaseModule. */
@Module({})
export class PaymentsModule {
  static forRoot(options: PaymentsOptions): DynamicModule {
    const now = options.now ?? (() => new Date());
    const stripe = options.provider === 'stripe' ? stripeOf(options.stripe) : undefined;
    const faults = options.crashAt === undefined ? NO_FAULTS : killAt(options.crashAt);
    return {
      module: PaymentsModule,
      imports: [CqrsModule],
      providers: [
        { provide: PAYMENTS_OPTIONS, useValue: options },
        // One adapter per provider; `mock` is the embedded default.
        {
          provide: PAYMENT_PROVIDER,
          inject: [PG_POOL],
          useFactory: (pool: Pool): PaymentProvider => {
            if (stripe !== undefined) return new StripePaymentProvider(stripe.client);
            return options.provider === 'none' ? new NoPaymentProvider() : new MockPaymentProvider(pool, options.mockBehaviour);
          },
        },
        { provide: STRIPE_WEBHOOKS, useValue: stripe === undefined ? null : new StripeWebhooks(stripe.client, stripe.settings.webhookSecret, stripe.settings.webhookToleranceSeconds) },
        { provide: PaymentStreams, inject: [PG_POOL], useFactory: (pool: Pool) => new PaymentStreams(pool) },
        { provide: WebhookDeliveries, inject: [PG_POOL], useFactory: (pool: Pool) => new WebhookDeliveries(pool, faults) },
        {
          provide: PaymentWorkflow,
          inject: [CommandHandling, ReadModelConsistency, PAYMENT_PROVIDER, PaymentStreams],
          useFactory: (commands: CommandHandling, consistency: ReadModelConsistency, provider: PaymentProvider, streams: PaymentStreams) =>
            new PaymentWorkflow(commands, consistency, provider, streams, {
              packages: options.packages,
              pendingTtlMs: options.pendingTtlMs,
              pendingPaymentsMax: options.pendingPaymentsMax,
              now,
              ...(stripe === undefined ? {} : { providerTimeoutMs: stripeCallDeadlineMs(stripe.settings) }),
              faults,
            }),
        },
        {
          provide: PaymentExpiryJob,
          inject: [PG_POOL, PaymentWorkflow],
          useFactory: (pool: Pool, workflow: PaymentWorkflow) => {
            const logger = new Logger('PaymentExpiry');
            return new PaymentExpiryJob(pool, workflow, (paymentId, error) => logger.warn(`payment ${paymentId} not settled, retried next run: ${describe(error)}`));
          },
        },
        {
          provide: PaymentReconciliationJob,
          inject: [PG_POOL, PaymentWorkflow],
          useFactory: (pool: Pool, workflow: PaymentWorkflow) => {
            const logger = new Logger('PaymentReconciliation');
            const disputes = stripe === undefined ? undefined : new StripeDisputeList(stripe.client);
            const refunds = stripe === undefined ? undefined : new StripeRefundList(stripe.client);
            return new PaymentReconciliationJob(pool, workflow, { lookbackMs: options.reconciliationLookbackMs, disputes, refunds }, (paymentId, problem) => {
              // A payment's id, `dispute <id>` / `refund <id>` for one the provider's list could not give whole, or `refunds` for the list itself.
              const subject = paymentId.startsWith('dispute ') || paymentId.startsWith('refund') ? paymentId : `payment ${paymentId}`;
              if (problem.kind === 'failed') {
                logger.warn(`${subject} not reconciled, retried next run: ${describe(problem.error)}`);
                return;
              }
              logger.warn(`${subject} left to an operator, reported each run: ${problem.why}`);
              options.onUnresolved?.('reconciliation');
            });
          },
        },
        PaymentJobsScheduler,
        InitiatePaymentHandler,
        CapturePaymentHandler,
        RefundPaymentHandler,
        SettlePaymentHandler,
        HandleStripeEventHandler,
        GetPaymentHandler,
        ListPaymentsHandler,
        ListPackagesHandler,
      ],
      exports: [PAYMENT_PROVIDER, PaymentExpiryJob, PaymentReconciliationJob, PaymentWorkflow],
    };
  }
}

function stripeOf(settings: StripeSettings | undefined): { settings: StripeSettings; client: ReturnType<typeof stripeClient> } {
  if (settings === undefined) throw new Error('PAYMENT_PROVIDER=stripe needs its settings (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET)');
  return { settings, client: stripeClient(settings) };
}

function describe(problem: unknown): string {
  return problem instanceof Error ? problem.message : String(problem);
}
