import type { INestApplication } from '@nestjs/common';
import { PG_POOL } from '@app/database';
import { ProjectionsAdmin } from '@app/operations';
import type { Pool } from 'pg';
import type { ReadModelProbes } from './service-metrics.js';

const OPEN_PAYMENT_STATUSES = ['PENDING', 'REFUND_PENDING'] as const;

/** The gauges' queries on the app's pool: projection status, and open payments on their partial index (idx_payments_unsettled). */
export function readModelProbes(app: INestApplication): ReadModelProbes {
  return {
    projectionLags: () => app.get(ProjectionsAdmin).status(),
    openPaymentsByStatus: async () => {
      const result = await app
        .get<Pool>(PG_POOL)
        .query<{ status: string; count: number }>("SELECT status, count(*)::int AS count FROM payments WHERE status IN ('PENDING', 'REFUND_PENDING') GROUP BY status");
      const counts = new Map(result.rows.map((row) => [row.status, row.count]));
      return OPEN_PAYMENT_STATUSES.map((status) => ({ status, count: counts.get(status) ?? 0 }));
    },
  };
}
