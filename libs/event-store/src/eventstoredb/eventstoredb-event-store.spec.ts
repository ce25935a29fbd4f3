import { describeEventStoreContract } from '../testing/event-store.contract.js';
import { EventStoreDBEventStore } from './eventstoredb-event-store.js';

// The contract runs against a real EventStoreDB / KurrentDB only: no server is started here. Point
// EVENTSTORE_URL at one (e.g. esdb://localhost:2113?tls=false, see infra/eventstoredb/README.md).
const url = process.env.EVENTSTORE_URL ?? '';

const runContract = () =>
  describeEventStoreContract(
    'EventStoreDB',
    () => {
      const store = EventStoreDBEventStore.connect(url);
      return Promise.resolve({ store, dispose: () => store.close() });
    },
    // EventStoreDB compares event ids only at the expected place, and answers a write and an
    // idempotent repeat alike: see EventStoreContractOptions.
    { eventIdScope: 'expected-place', reportsWrites: false },
  );

if (url === '') describe.skip('EventStoreDB contract not run: EVENTSTORE_URL is unset', runContract);
else runContract();
