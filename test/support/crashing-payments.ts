import { CommandHandling, PaymentStreams, ReadModelConsistency } from '@app/event-sourcing';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { DEFAULT_TOKEN_PACKAGES, PAYMENT_PROVIDER, PaymentWorkflow, type PaymentFaultPoint, type PaymentProvider } from '@app/payments';
import type { TestApp } from './test-app.js';

/** What a payment flow throws at its fault point in a crash spec: the process "dies" there. */
export class SimulatedCrash extends Error {
  override readonly name = 'SimulatedCrash';
}

/**
 * Another process of the service: its own command handling (an empty cache) over the app's store,
 * provider (or `through`) and database, whose payment flows die at `crashAt`.
 */
export function crashingWorkflow(testApp: TestApp, crashAt?: PaymentFaultPoint, through?: PaymentProvider): PaymentWorkflow {
  const provider = through ?? testApp.app.get<PaymentProvider>(PAYMENT_PROVIDER, { strict: false });
  const commands = new CommandHandling(testApp.app.get<EventStore>(EVENT_STORE, { strict: false }), { cacheEntriesMax: 100, snapshotIntervalEvents: 500 });
  return new PaymentWorkflow(commands, testApp.app.get(ReadModelConsistency, { strict: false }), provider, new PaymentStreams(testApp.database.pool), {
    packages: DEFAULT_TOKEN_PACKAGES,
    pendingTtlMs: 3_600_000,
    pendingPaymentsMax: 10,
    now: () => new Date(),
    faults: (point) => {
      if (point === crashAt) throw new SimulatedCrash(`crashed at ${point}`);
    },
  });
}
