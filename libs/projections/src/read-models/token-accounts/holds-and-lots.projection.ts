import type { RecordedEvent } from '@app/event-store';
import { isSettleWithDebit, LOT_PRIORITY_DEFAULT, OPENING_LOT_ID, type Draw, type HoldEvent, type HoldSettled, type LotTerms } from '@app/ledger';
import type { RowChange } from '../../projection.js';
import type { TransactionEvent } from './token-transaction.view.js';

const INSERT_HOLD = `
  INSERT INTO token_holds (hold_id, user_id, amount, description, status, expires_at, draws, created_at, event_id, stream_revision, metadata)
  VALUES ($1, $2, $3, $4, 'active', $5, $6::jsonb, $7, $8, $9, $10::jsonb)`;

const END_HOLD = `
  UPDATE token_holds SET status = $2, settled_amount = $3, transaction_id = $4, ended_at = $5 WHERE hold_id = $1`;

const UPSERT_LOT = `
  INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision)
  VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, 'active', $9, $10)
  ON CONFLICT (user_id, lot_id) DO UPDATE SET
    original = token_lots.original + excluded.original,
    remaining = token_lots.remaining + excluded.remaining,
    status = 'active'`;

// The rule of `debitLots` in token-accounts.bulk.ts, for one draw.
const DRAW_FROM_LOT = `
  UPDATE token_lots SET
    remaining = remaining - $3,
    status = CASE WHEN $4::text IS NOT NULL AND ($4::text <> 'refunded' OR source = 'purchase') THEN $4::text
                  WHEN status IN ('expired', 'voided', 'refunded') THEN status
                  WHEN remaining - $3 = 0 THEN CASE WHEN expires_at <= $5::timestamptz THEN 'expired' ELSE 'spent' END ELSE 'active' END
  WHERE user_id = $1 AND lot_id = $2`;

/** The `token_holds` row of a hold event. An expired hold ends at its `expiresAt`, a settled or released one when that was decided. */
export function projectHoldEvent(event: HoldEvent, recorded: RecordedEvent): readonly RowChange[] {
  const { data } = event;
  switch (event.type) {
    case 'TokensHeld':
      return [
        {
          text: INSERT_HOLD,
          values: [
            data.holdId,
            data.userId,
            event.data.amount,
            event.data.description,
            event.data.expiresAt,
            JSON.stringify(event.data.draws),
            data.occurredAt,
            recorded.id,
            recorded.revision.toString(),
            event.data.metadata === undefined ? null : JSON.stringify(event.data.metadata),
          ],
        },
      ];
    case 'HoldSettled':
      return [{ text: END_HOLD, values: [data.holdId, 'settled', event.data.settledAmount, event.data.transactionId, data.occurredAt] }];
    case 'HoldReleased':
      return [{ text: END_HOLD, values: [data.holdId, 'released', null, null, data.occurredAt] }];
    case 'HoldExpired':
      // It stopped counting at its expiresAt, in every decision from that instant (ADR 0020); the event
      // is recorded later, by the job or the next command on the account.
      return [{ text: END_HOLD, values: [data.holdId, 'expired', null, null, event.data.expiresAt] }];
    default: {
      const unknown: never = event;
      throw new Error(`token_holds cannot project ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * The `token_lots` changes of an event that moves tokens: a credit creates its lot at its revision
 * (written before lots: adds to the opening lot, which keeps its first credit's), a debit takes its
 * draws from their lots (written before lots: from the opening lot), and an expiry, a void or a
 * purchase's refund closes the lot it draws from.
 */
export function projectLotChanges(event: TransactionEvent | HoldSettled, recorded: RecordedEvent): readonly RowChange[] {
  switch (event.type) {
    case 'HoldSettled':
      // Written before ADR 0028 (no draws), the settle's TokensUsed debited.
      return isSettleWithDebit(event.data) ? debit({ ...event.data, amount: event.data.settledAmount }, null) : [];
    case 'TokensPurchased':
      return [credit(event.data, recorded, 'purchase', event.data.lot, event.data.paymentId)];
    case 'TokensGranted':
      return [credit(event.data, recorded, 'grant', event.data.lot, null)];
    case 'TokensAdjusted':
      return event.data.amount > 0 ? [credit(event.data, recorded, 'adjustment', event.data.lot, null)] : debit(event.data, null);
    case 'TokensUsed':
      return debit(event.data, null);
    case 'TokensRefunded':
      return debit(event.data, 'refunded');
    case 'GrantVoided':
      return debit(event.data, 'voided');
    case 'LotExpired':
      return debit(event.data, 'expired');
    case 'TokensChargedBack':
    case 'ShortfallCovered':
      return debit(event.data, null);
    default: {
      const unknown: never = event;
      throw new Error(`token_lots cannot project ${JSON.stringify(unknown)}`);
    }
  }
}

type Movement = { readonly userId: string; readonly transactionId: string; readonly amount: number; readonly occurredAt: string };

function credit(data: Movement, recorded: RecordedEvent, source: 'purchase' | 'grant' | 'adjustment', lot: LotTerms | undefined, paymentId: string | null): RowChange {
  const revision = recorded.revision.toString();
  if (lot === undefined) {
    return { text: UPSERT_LOT, values: [data.userId, OPENING_LOT_ID, 'opening', null, null, data.amount, LOT_PRIORITY_DEFAULT, null, data.occurredAt, revision] };
  }
  return { text: UPSERT_LOT, values: [data.userId, lot.lotId, source, paymentId, data.transactionId, data.amount, lot.priority, lot.expiresAt, data.occurredAt, revision] };
}

function debit(data: Movement & { readonly draws?: readonly Draw[] }, closing: 'refunded' | 'voided' | 'expired' | null): readonly RowChange[] {
  const draws = data.draws ?? [{ lotId: OPENING_LOT_ID, amount: Math.abs(data.amount) }];
  return draws.map((draw) => ({ text: DRAW_FROM_LOT, values: [data.userId, draw.lotId, draw.amount, closing, data.occurredAt] }));
}
