import type { Metadata } from '../metadata.js';
import type { Draw } from './lot.state.js';

/** An active hold: tokens set aside until it is settled, released or expires. */
export type Hold = {
  readonly holdId: string;
  readonly amount: number;
  readonly description: string | null;
  /** The caller's metadata of the hold: a settle without its own takes it. Absent when none. */
  readonly metadata?: Metadata;
  readonly expiresAt: string;
  readonly createdAt: string;
  /** The lots' tokens it set aside, in draw-down order: a settle debits from them in this order. */
  readonly reservations: readonly Draw[];
};

export type HoldEnd = 'settled' | 'released' | 'expired';

/** Whether the hold still counts as held at `now`: it stops at the instant of its `expiresAt`. */
export function isHoldActive(hold: Pick<Hold, 'expiresAt'>, now: Date): boolean {
  return Date.parse(hold.expiresAt) > now.getTime();
}
