import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JobRunOutcome } from '@app/database';
import { PROJECTION_FAILURE_CAUSES } from '@app/event-sourcing';
import { BATCH_FALLBACK_PASSES, PROJECTIONS } from '@app/projections';

/** What the gauges read on each scrape: cheap queries, so a scrape every few seconds costs the database little. */
export type ReadModelProbes = {
  /** Every projection's lag (ProjectionsAdmin.status). */
  readonly projectionLags: () => Promise<readonly { readonly name: string; readonly lagSeconds: number; readonly lagEvents: number | null }[]>;
  /** Open payments (PENDING, REFUND_PENDING) by status, counted on their partial index. */
  readonly openPaymentsByStatus: () => Promise<readonly { readonly status: string; readonly count: number }[]>;
};

/** HTTP latency buckets in seconds: a cached balance read (~1 ms) to a write waiting out its deadline (5 s). */
const HTTP_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Group-commit batch sizes: 1 (a lone writer) up to the batch limit (128 appends). */
const BATCH_APPENDS_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
const JOB_SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

/**
 * The service's Prometheus metrics, in a registry of their own (one per application, so two apps in
 * one test process do not share counters). Names are prefixed `token_ledger_`; Node's process
 * metrics (CPU, memory, event-loop lag, GC) come with them.
 */
export class ServiceMetrics {
  readonly registry = new Registry();

  readonly httpRequestDuration = new Histogram({
    name: 'token_ledger_http_request_duration_seconds',
    help: 'HTTP requests by method, route template and status code, with their latency',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: HTTP_SECONDS_BUCKETS,
    registers: [this.registry],
  });

  readonly commandOutcomes = new Counter({
    name: 'token_ledger_command_outcomes_total',
    help: 'Commands (POST and DELETE requests) by route template and outcome: ok, or the problem code they were refused with',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly webhooks = new Counter({
    name: 'token_ledger_webhooks_total',
    help: 'Payment provider webhooks received, by provider and outcome: ok, or the problem code',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly paymentsUnresolved = new Counter({
    name: 'token_ledger_payments_unresolved_total',
    help: 'Reports of a payment that disagrees with its provider in a way no rule settles, left to an operator (a refund that failed after it succeeded, a capture in part), by source: the reconciliation job (each run, within its look-back) or a webhook',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly appendBatchSize = new Histogram({
    name: 'token_ledger_group_commit_batch_appends',
    help: 'Appends per group-commit transaction of the PostgreSQL event store',
    buckets: BATCH_APPENDS_BUCKETS,
    registers: [this.registry],
  });

  readonly projectionFailures = new Counter({
    name: 'token_ledger_projection_failures_total',
    help: 'Failed tries of a projection runner of this process, each retry counted, by cause: event (it cannot apply an event: it stops there and retries, never skips it; GET /v1/admin/projections names it) or other (a lost connection, a failed read or commit)',
    labelNames: ['projection', 'cause'] as const,
    registers: [this.registry],
  });

  readonly projectionFallbacks = new Counter({
    name: 'token_ledger_projection_fallbacks_total',
    help: 'Batches a projection runner of this process applied again the slower way after its faster pass failed, by that pass: set-based (then event by event) or event-by-event (a round trip; then one statement at a time). A try that then fails counts in token_ledger_projection_failures_total too; a rise beyond it is a pass that failed where the slower one did not',
    labelNames: ['projection', 'from'] as const,
    registers: [this.registry],
  });

  readonly jobRuns = new Counter({
    name: 'token_ledger_job_runs_total',
    help: 'Runs of the interval jobs (payment expiry and reconciliation, credit expiry, idempotency purge) in this process, by outcome',
    labelNames: ['job', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly jobRunDuration = new Histogram({
    name: 'token_ledger_job_run_duration_seconds',
    help: 'How long the runs of the interval jobs took',
    labelNames: ['job'] as const,
    buckets: JOB_SECONDS_BUCKETS,
    registers: [this.registry],
  });

  private probes: ReadModelProbes | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Every series of the projection counters from the start: a series that first appears at 1 is
    // missed by rate() and increase(), so a single failure would trip no alert.
    for (const { name: projection } of PROJECTIONS) {
      for (const cause of PROJECTION_FAILURE_CAUSES) this.projectionFailures.inc({ projection, cause }, 0);
      for (const from of BATCH_FALLBACK_PASSES) this.projectionFallbacks.inc({ projection, from }, 0);
    }
    // The gauges' collect() runs with `this` bound to the gauge: the probes are reached through this arrow.
    const probes = () => this.probes;
    new Gauge({
      name: 'token_ledger_projection_lag_seconds',
      help: 'Age of the oldest event a projection has not applied (0 when caught up), read at scrape',
      labelNames: ['projection'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const lag of (await probes()?.projectionLags()) ?? []) this.set({ projection: lag.name }, lag.lagSeconds);
      },
    });
    new Gauge({
      name: 'token_ledger_projection_lag_events',
      help: 'Events after a projection checkpoint, read at scrape (absent on EventStoreDB, which cannot count them)',
      labelNames: ['projection'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const lag of (await probes()?.projectionLags()) ?? []) if (lag.lagEvents !== null) this.set({ projection: lag.name }, lag.lagEvents);
      },
    });
    new Gauge({
      name: 'token_ledger_payments_open',
      help: 'Payments not yet settled (PENDING, REFUND_PENDING) by status, read at scrape',
      labelNames: ['status'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { status, count } of (await probes()?.openPaymentsByStatus()) ?? []) this.set({ status }, count);
      },
    });
  }

  /** Connects the gauges read at scrape to the running application. */
  readFrom(probes: ReadModelProbes): void {
    this.probes = probes;
  }

  observeJobRun(job: string, outcome: JobRunOutcome, durationMs: number): void {
    this.jobRuns.inc({ job, outcome });
    this.jobRunDuration.observe({ job }, durationMs / 1_000);
  }

  /** The exposition text (`text/plain; version=0.0.4`). */
  async text(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
