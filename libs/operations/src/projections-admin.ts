import type { EventStore } from '@app/event-store';
import {
  PROJECTIONS,
  ProjectionRebuilds,
  projectionStatuses,
  rebuildAccount,
  type AccountRebuildResult,
  type Projection,
  type ProjectionRunnerView,
  type ProjectionStatus,
  type RebuildView,
} from '@app/projections';
import type { BeforeApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';
import { AccountAudit, turnWaitOf } from './account-audit.js';
import { replayAccount, verifyAllAccounts, type AccountFinding, type AccountReplay, type VerificationReport } from './account-verification.js';

export type ProjectionsAdminOptions = {
  readonly connectionString: string;
  readonly projections?: readonly Projection[];
  /** The projection runners of this process (or `standby` for those another process leads), by projection name. */
  readonly runners?: ReadonlyMap<string, ProjectionRunnerView>;
  readonly onLog?: (message: string) => void;
  /** How long an account's rebuild waits for its turn among the pool's verifications and rebuilds before failing with AccountChecksBusyError; no limit without it (the CLI). */
  readonly turnWaitMs?: number;
};

/** What operators do with projections, for the HTTP admin endpoints and the CLI alike. */
export class ProjectionsAdmin implements BeforeApplicationShutdown {
  readonly rebuilds: ProjectionRebuilds;
  readonly projections: readonly Projection[];
  private readonly audit: AccountAudit;

  constructor(
    private readonly store: EventStore,
    private readonly pool: Pool,
    private readonly options: ProjectionsAdminOptions,
  ) {
    this.projections = options.projections ?? PROJECTIONS;
    this.audit = new AccountAudit(store, pool, { projections: this.projections });
    this.rebuilds = new ProjectionRebuilds(store, pool, {
      connectionString: options.connectionString,
      projections: this.projections,
      onLog: options.onLog,
    });
  }

  status(): Promise<readonly ProjectionStatus[]> {
    return projectionStatuses({
      store: this.store,
      pool: this.pool,
      projections: this.projections,
      runners: this.options.runners ?? new Map(),
      rebuilds: this.rebuilds,
    });
  }

  /** `requestedId`: the rebuild's id when the request is keyed (a retry returns that rebuild, never starts another). */
  startRebuild(name: string, requestedId?: string): Promise<RebuildView> {
    return this.rebuilds.start(name, requestedId);
  }

  getRebuild(id: string): Promise<RebuildView | undefined> {
    return this.rebuilds.get(id);
  }

  rebuildAccount(userId: string): Promise<AccountRebuildResult> {
    return rebuildAccount(this.store, this.pool, this.projections, userId, turnWaitOf(this.options.turnWaitMs));
  }

  replayAccount(userId: string): Promise<AccountReplay> {
    return replayAccount(this.store, userId);
  }

  /**
   * One account checked as the auditor's verify route checks it: its hash chain, the ledger's replay
   * of it, and its read models against the replay (`AccountAudit.findings`).
   */
  verifyAccount(userId: string): Promise<readonly AccountFinding[]> {
    return this.audit.findings(userId);
  }

  /** Every account, checked as `verifyAccount` checks one. */
  verifyAll(onProgress?: (done: number, total: number) => void): Promise<VerificationReport> {
    return verifyAllAccounts(this.store, this.pool, (userId) => this.audit.findings(userId), { onProgress });
  }

  /** Rebuilds still running in this process are stopped (marked failed, shadow tables dropped). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.rebuilds.stop();
  }
}
