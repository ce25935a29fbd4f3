import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { LeaderElection, type AdvisoryLockLeadership } from '@app/database';
import { PAYMENTS_OPTIONS, type PaymentsOptions } from '../payments.tokens.js';
import { PaymentReconciliationJob } from '../reconciliation/payment-reconciliation.job.js';
import { PaymentExpiryJob } from './payment-expiry.job.js';

/** The leadership workers of the payment jobs. */
export const PAYMENT_EXPIRY_WORKER = 'payment-expiry';
export const PAYMENT_RECONCILIATION_WORKER = 'payment-reconciliation';

/**
 * Runs the expiry job every `jobIntervalMs` while this process leads `payment-expiry`, and the
 * reconciliation job every `reconciliationIntervalMs` while it leads `payment-reconciliation` (each
 * one process at a time across all on the database, independently). Each runs at once when this
 * process takes the lead, then every interval: what went wrong while no process led (a capture
 * whose process died, a payment past its time) is mended at the start, not one interval later, and
 * leaders replaced more often than the interval (rolling deploys against a reconciliation of up to
 * 24 hours) still run it. A run still going at the next tick is not overlapped; one in flight when
 * leadership ends is waited for before the lock is released.
 */
@Injectable()
export class PaymentJobsScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('PaymentJobs');
  private readonly leaderships: readonly AdvisoryLockLeadership[];

  constructor(
    election: LeaderElection,
    private readonly expiry: PaymentExpiryJob,
    private readonly reconciliation: PaymentReconciliationJob,
    @Inject(PAYMENTS_OPTIONS) private readonly options: PaymentsOptions,
  ) {
    const failed = (job: string) => (error: unknown) => this.logger.error(`${job} run failed: ${error instanceof Error ? error.message : String(error)}`);
    this.leaderships = [
      election.every(PAYMENT_EXPIRY_WORKER, { intervalMs: options.jobIntervalMs, run: () => this.expire(), onError: failed('expiry'), runOnLead: true }),
      election.every(PAYMENT_RECONCILIATION_WORKER, { intervalMs: options.reconciliationIntervalMs, run: () => this.reconcile(), onError: failed('reconciliation'), runOnLead: true }),
    ];
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.jobsEnabled) return;
    for (const leadership of this.leaderships) await leadership.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(this.leaderships.map((leadership) => leadership.stop()));
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  private async expire(): Promise<void> {
    const run = await this.expiry.runOnce(this.now());
    if (run.examined > 0) this.logger.log(`expiry run: ${run.examined} due payments examined, ${run.failed} failed`);
  }

  private async reconcile(): Promise<void> {
    const run = await this.reconciliation.runOnce(this.now());
    if (run.settled + run.unresolved + run.failed + run.disputesRecorded > 0) {
      this.logger.log(
        `reconciliation run: ${run.examined} payments examined, ${run.settled} settled, ${run.unresolved} unresolved, ${run.failed} failed; ${run.refunds} refunds at the provider not recorded here reconciled; ${run.disputes} disputes listed, ${run.disputesRecorded} recorded`,
      );
    }
  }
}
