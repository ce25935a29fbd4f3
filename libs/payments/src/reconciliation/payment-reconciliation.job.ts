import { systemActor, type CommandContext } from '@app/event-sourcing';
import type { Pool } from 'pg';
import type { PaymentWorkflow } from '../payment-workflow.js';
import { keysetPages } from '@app/database';
import { PaymentsError } from '../payments.errors.js';
import { foreignDispute } from '../record-dispute/record-dispute.flow.js';
import type { ProviderDisputes, ProviderRefunds, ReportedDispute, ReportedRefund } from '../provider/payment-provider.port.js';

/**
 * How far back the refunds are read, by their creation (at least the look-back): Stripe retries a
 * notification for about 3 days, and a refund may stay pending at the bank for days before it
 * succeeds; a refund that succeeds later than this with its notifications lost is beyond the sweep.
 */
export const REFUND_LOOKBACK_MS = 14 * 86_400_000;

/** Payments read per query; a run reads as many pages as there are candidates. */
export const RECONCILIATION_PAGE_SIZE = 100;

/**
 * How far back the disputes are read, by their creation: a dispute is decided weeks after it is opened
 * (Stripe: the evidence is due within about 3 weeks, the bank decides within about 75 days), so
 * 120 days covers a dispute's whole life.
 */
export const DISPUTE_LOOKBACK_MS = 120 * 86_400_000;

export type ReconciliationJobOptions = {
  /** How far back COMPLETED and FAILED payments are compared with the provider (by their last change). */
  readonly lookbackMs: number;
  readonly pageSize?: number;
  /** The provider's disputes, when it lists them (Stripe): each run records those the ledger has not recorded as they stand. */
  readonly disputes?: ProviderDisputes;
  /** Default DISPUTE_LOOKBACK_MS. */
  readonly disputeLookbackMs?: number;
  /**
   * The provider's refunds, when it lists them (Stripe): each run reconciles the payments of those
   * made within REFUND_LOOKBACK_MS that refunded their order whole and that the ledger does not
   * record refunded (an operator's refund of a purchase older than the look-back, whose
   * notifications all failed).
   */
  readonly refunds?: ProviderRefunds;
  /** How far back refunds are read; default REFUND_LOOKBACK_MS, and never less than `lookbackMs`. */
  readonly refundLookbackMs?: number;
};

export type ReconciliationRun = {
  /** Payments compared with the provider. */
  readonly examined: number;
  /** Payments this run appended to (finished or reversed). */
  readonly settled: number;
  /** Payments whose disagreement no rule settles (reported to the operator each run). */
  readonly unresolved: number;
  /** Payments whose provider call or append failed; retried next run. */
  readonly failed: number;
  /** Disputes of our payments the provider listed (0 without `disputes`). */
  readonly disputes: number;
  /** Of those, the ones this run recorded (opened or closed), which the provider's notifications had not. */
  readonly disputesRecorded: number;
  /** Refunds of our payments the provider listed that the ledger did not record refunded (0 without `refunds`); the payments of those this run recorded are among `settled`. */
  readonly refunds: number;
};

/** What the job reports about one payment: a disagreement no rule settles (an operator decides; reported each run), or a run that failed for it (retried next run). */
export type ReconciliationProblem = { readonly kind: 'unresolved'; readonly why: string } | { readonly kind: 'failed'; readonly error: unknown };

type CandidateRow = { readonly id: string; readonly user_id: string };

// Keyset on id. Every PENDING payment (captured at the provider but not yet recorded; there are few:
// they expire) and every refund asked for and not recorded, whatever their age; COMPLETED, FAILED and
// REFUNDED payments changed within the look-back (captured or refunded at the provider behind the
// ledger's back, or a refund that failed there after it succeeded).
const CANDIDATE_PAGE_SQL = `
  SELECT id::text, user_id::text FROM payments
   WHERE ($1::uuid IS NULL OR id > $1::uuid)
     AND (status IN ('PENDING', 'REFUND_PENDING') OR (status IN ('COMPLETED', 'FAILED', 'REFUNDED') AND updated_at >= $2))
   ORDER BY payments.id LIMIT $3`;

/**
 * Compares payments with the provider and settles every disagreement by the reconciliation rules
 * (`reconciliation.rules.ts`): captured but not credited (a capture racing the expiry, then a crash),
 * refunded but not debited, a refund asked for whose provider call never happened, a refund the
 * provider reversed after it succeeded (reported, not undone), a payment expired
 * in the ledger but captured at the provider. A PENDING payment is expired only once due, as the
 * expiry job would (the two may overlap; each decision is idempotent). Then, with `disputes`, it
 * reads the provider's disputes of the look-back and records each one the ledger has not recorded
 * as it stands: a dispute otherwise arrives only by webhook, and one whose webhooks all failed (a
 * rolled webhook secret, a long outage) would leave a lost chargeback's tokens with the buyer. With
 * `refunds`, it first reads the provider's refunds of the last REFUND_LOOKBACK_MS (or the look-back,
 * if longer) and reconciles each payment one refunded whole that the ledger does not record
 * refunded: a refund made in the provider's dashboard of a purchase older than the look-back is
 * otherwise seen only by its notification. Runs in one
 * process at a time (the `payment-reconciliation` leadership); overlapping runs are safe for the
 * same reasons as the expiry job's.
 */
export class PaymentReconciliationJob {
  private readonly pageSize: number;

  constructor(
    private readonly pool: Pool,
    private readonly workflow: PaymentWorkflow,
    private readonly options: ReconciliationJobOptions,
    /** Called with the payment's id, `dispute <id>` / `refund <id>` for one the provider's list could not give whole, or `refunds` when the refund list could not be read. */
    private readonly onProblem: (paymentId: string, problem: ReconciliationProblem) => void = () => undefined,
  ) {
    this.pageSize = options.pageSize ?? RECONCILIATION_PAGE_SIZE;
  }

  async runOnce(now: Date): Promise<ReconciliationRun> {
    const context = { requestId: `payment-reconciliation-${now.toISOString()}`, actor: systemActor('payment-reconciliation', 'job') };
    const since = new Date(now.getTime() - this.options.lookbackMs).toISOString();
    const pages = keysetPages<CandidateRow>(async (after, limit) => (await this.pool.query<CandidateRow>(CANDIDATE_PAGE_SQL, [after?.id ?? null, since, limit])).rows, this.pageSize);
    const run = { examined: 0, settled: 0, unresolved: 0, failed: 0, disputes: 0, disputesRecorded: 0, refunds: 0 };
    const examined = new Set<string>();
    for await (const page of pages) {
      for (const candidate of page) {
        run.examined += 1;
        examined.add(candidate.id);
        await this.reconcileOne(candidate, context, now, run);
      }
    }
    if (this.options.refunds !== undefined) {
      try {
        const since = new Date(now.getTime() - Math.max(this.options.lookbackMs, this.options.refundLookbackMs ?? REFUND_LOOKBACK_MS));
        const { refunds, failures } = await this.options.refunds.refundsSince(since);
        // Each as a candidate of the look-back is (a refunded order whole records the refund; ADR 0021).
        for (const candidate of await this.notRecordedRefunded(refunds, examined)) {
          run.refunds += 1;
          examined.add(candidate.id);
          await this.reconcileOne(candidate, context, now, run);
        }
        for (const { refundId, error } of failures) {
          run.failed += 1;
          this.onProblem(`refund ${refundId}`, { kind: 'failed', error });
        }
      } catch (error) {
        // The list could not be read (the next run reads it again): reported, and the disputes are still swept.
        run.failed += 1;
        this.onProblem('refunds', { kind: 'failed', error });
      }
    }
    if (this.options.disputes !== undefined) {
      const since = new Date(now.getTime() - (this.options.disputeLookbackMs ?? DISPUTE_LOOKBACK_MS));
      // A failed list fails the run (the scheduler logs it): the payments above are done, and the next run reads again.
      const { disputes, failures } = await this.options.disputes.disputesSince(since);
      for (const reported of disputes) {
        run.disputes += 1;
        await this.recordDispute(reported, context, run);
      }
      for (const { disputeId, error } of failures) {
        run.failed += 1;
        this.onProblem(`dispute ${disputeId}`, { kind: 'failed', error });
      }
    }
    return run;
  }

  /**
   * The payments of the listed refunds that the ledger has and does not record refunded, once each,
   * leaving out those this run compared already: a refund the ledger recorded (most of them, by its
   * own request or the notification) costs the sweep no call to the provider. A payment this ledger
   * does not have is not ours (another deployment on the same provider account).
   */
  private async notRecordedRefunded(refunds: readonly ReportedRefund[], examined: ReadonlySet<string>): Promise<readonly CandidateRow[]> {
    const paymentIds = [...new Set(refunds.map((refund) => refund.paymentId))].filter((paymentId) => !examined.has(paymentId));
    if (paymentIds.length === 0) return [];
    return (await this.pool.query<CandidateRow>("SELECT id::text, user_id::text FROM payments WHERE id = ANY($1::uuid[]) AND status <> 'REFUNDED' ORDER BY id", [paymentIds])).rows;
  }

  /** Settles one payment by what the provider says (`reconcile`), counted in `run`; its problem reported, never thrown. */
  private async reconcileOne({ id, user_id: userId }: CandidateRow, context: CommandContext, now: Date, run: { settled: number; unresolved: number; failed: number }): Promise<void> {
    try {
      // The read model may lag: decide on the stream's own state.
      const payment = (await this.workflow.stateOf(userId)).payments.get(id);
      if (payment === undefined) return;
      const reconciled = await this.workflow.reconcile(payment, context, now);
      if (reconciled.appended > 0) run.settled += 1;
      if (reconciled.unresolved !== undefined) {
        run.unresolved += 1;
        this.onProblem(id, { kind: 'unresolved', why: reconciled.unresolved });
      }
    } catch (error) {
      run.failed += 1;
      this.onProblem(id, { kind: 'failed', error });
    }
  }

  /**
   * Records a dispute as the provider has it now, unless the account records it so already (its
   * notifications arrived), or records it closed (won or lost: final; Stripe's appeal statuses read
   * open again): RecordDispute is idempotent by the dispute id and status, so this only spares the
   * decision and, for a lost one, the provider's read of a pending refund. A dispute
   * whose PaymentIntent is not the payment's order (its metadata copied onto another) is reported and
   * not recorded; one of a payment this ledger does not have is not ours (another deployment on the
   * same provider account), as the webhooks take it.
   */
  private async recordDispute({ paymentId, orderId, dispute }: ReportedDispute, context: CommandContext, run: { disputesRecorded: number; unresolved: number; failed: number }): Promise<void> {
    try {
      const known = await this.workflow.disputeRecordOf(paymentId, dispute.disputeId);
      if (known === undefined || known.recorded === dispute.status || known.recorded === 'won' || known.recorded === 'lost') return;
      if (known.orderId !== orderId) {
        run.unresolved += 1;
        this.onProblem(paymentId, { kind: 'unresolved', why: foreignDispute(dispute, orderId, known.orderId) });
        return;
      }
      if ((await this.workflow.recordDispute(paymentId, dispute, context)).appended > 0) run.disputesRecorded += 1;
    } catch (error) {
      if (error instanceof PaymentsError && error.code === 'PAYMENT_CAPTURED_IN_PART') {
        run.unresolved += 1;
        this.onProblem(paymentId, { kind: 'unresolved', why: error.message });
        return;
      }
      run.failed += 1;
      this.onProblem(paymentId, { kind: 'failed', error });
    }
  }
}
