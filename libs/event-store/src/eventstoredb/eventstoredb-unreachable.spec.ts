import { EventStoreDBEventStore } from './eventstoredb-event-store.js';

// No EventStoreDB server is needed: these are the adapter's ways of failing when it finds none.
describe('EventStoreDB adapter without a server', () => {
  it('stops a subscription aborted while the client still looks for its cluster: the iteration fails, and no rejection is left unhandled (which ends a Node 20 process)', async () => {
    // Two nodes that do not exist, discovery given up after one attempt.
    const store = EventStoreDBEventStore.connect('esdb://127.0.0.1:1,127.0.0.1:2?tls=false&maxDiscoverAttempts=1&discoveryInterval=10');
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const controller = new AbortController();
      const first = store.subscribeToAll({ signal: controller.signal }).next();
      controller.abort();
      await expect(first).rejects.toThrow(/discover/);
      // An unhandled rejection is reported after the microtasks that could still handle it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await store.close();
    }
  });
});
