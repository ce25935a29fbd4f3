import { randomUUID } from 'node:crypto';
import { sealEvents, type JsonObject } from '../hash-chain.js';
import type { BundleEvent } from '../audit-bundle.js';

export const userId = '6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40';
export const streamId = `token-account-${userId}`;

/** `amount` is signed for an adjustment (its reason is fixed), positive otherwise. */
type Step = { readonly kind: 'purchase' | 'usage' | 'adjustment'; readonly amount: number; readonly at: string };

const EVENT_TYPES = { purchase: 'TokensPurchased', usage: 'TokensUsed', adjustment: 'TokensAdjusted' } as const;

/** Token account events for `steps`, sealed into a hash chain, as the store would return them. */
export function sealedStream(steps: readonly Step[]): BundleEvent[] {
  let balance = 0;
  const events = steps.map((step) => {
    balance += step.kind === 'usage' ? -step.amount : step.amount;
    const common = { userId, transactionId: randomUUID(), amount: step.amount, balanceAfter: balance, occurredAt: step.at };
    const data =
      step.kind === 'adjustment' ? { ...common, reason: 'Correction' } : step.kind === 'purchase' ? { ...common, description: null, paymentId: randomUUID() } : { ...common, description: null };
    const metadata: JsonObject = { schemaVersion: 1, requestId: randomUUID(), actorSubject: userId, actorRole: 'service' };
    return { id: randomUUID(), type: EVENT_TYPES[step.kind], data, metadata };
  });
  return sealEvents(streamId, 0n, null, events).map((event, index) => ({
    ...event,
    streamId,
    revision: BigInt(index),
    position: `${1000 + index}/${5000 + index}`,
    createdAt: steps[index]?.at ?? '',
  }));
}

export const STEPS: readonly Step[] = [
  { kind: 'purchase', amount: 100, at: '2026-01-01T10:00:00.000Z' },
  { kind: 'usage', amount: 30, at: '2026-01-02T10:00:00.000Z' },
  { kind: 'purchase', amount: 50, at: '2026-01-03T10:00:00.000Z' },
  { kind: 'usage', amount: 70, at: '2026-01-04T10:00:00.000Z' },
  { kind: 'usage', amount: 5, at: '2026-01-05T10:00:00.000Z' },
];

export function withData(event: BundleEvent, patch: Record<string, unknown>): BundleEvent {
  return { ...event, data: { ...(event.data as object), ...patch } };
}
