import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, toSafeInteger } from '@app/database';
import type { Pool } from 'pg';

export type BalanceView = { readonly userId: string; readonly balance: number };

/** The balance from `user_tokens`; 0 for a user never seen. */
export class GetBalanceQuery extends Query<BalanceView> {
  constructor(readonly userId: string) {
    super();
  }
}

@QueryHandler(GetBalanceQuery)
export class GetBalanceHandler implements IQueryHandler<GetBalanceQuery> {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async execute({ userId }: GetBalanceQuery): Promise<BalanceView> {
    const result = await this.pool.query<{ balance: string }>('SELECT balance FROM user_tokens WHERE user_id = $1', [userId]);
    const row = result.rows[0];
    return { userId, balance: row === undefined ? 0 : toSafeInteger(row.balance, 'user_tokens.balance') };
  }
}
