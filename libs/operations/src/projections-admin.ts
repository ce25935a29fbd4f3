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
import { replayAccount, verifyAccount, verifyAllAccounts, type AccountDifference, type ReplayLine, type VerificationReport } from './account-verification.js';

export type ProjectionsAdminOptions = {
  readonly connectionString: string;
  readonly projections?: readonly Projection[];
  /** The projection runners of this process (or `standby` for those another process leads), by projection name. */
  readonly runners?: ReadonlyMap<string, ProjectionRunnerView>;
  readonly onLog?: (message: string) => void;
};

/** What operators do with projections, for the HTTP admin endpoints and the CLI alike. */
export class ProjectionsAdmin implements BeforeApplicationShutdown {
  readonly rebuilds: ProjectionRebuilds;
  readonly projections: readonly Projection[];

  constructor(
    private readonly store: EventStore,
    private readonly pool: Pool,
    private readonly options: ProjectionsAdminOptions,
  ) {
    this.projections = options.projections ?? PROJECTIONS;
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

  startRebuild(name: string): Promise<RebuildView> {
    return this.rebuilds.start(name);
  }

  getRebuild(id: string): Promise<RebuildView | undefined> {
    return this.rebuilds.get(id);
  }

  rebuildAccount(userId: string): Promise<AccountRebuildResult> {
    return rebuildAccount(this.store, this.pool, this.projections, userId);
  }

  replayAccount(userId: string): Promise<readonly ReplayLine[]> {
    return replayAccount(this.store, userId);
  }

  verifyAccount(userId: string): Promise<readonly AccountDifference[]> {
    return verifyAccount(this.store, this.pool, this.projections, userId);
  }

  verifyAll(onProgress?: (done: number, total: number) => void): Promise<VerificationReport> {
    return verifyAllAccounts(this.store, this.pool, this.projections, { onProgress });
  }

  /** Rebuilds still running in this process are stopped (marked failed, shadow tables dropped). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.rebuilds.stop();
  }
}
