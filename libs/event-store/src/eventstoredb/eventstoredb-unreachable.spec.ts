import { DatabaseUnavailableError, databaseUnavailableErrorOf } from '@app/database';
import { DeadlineExceededError, StreamNotFoundError, UnavailableError } from '@eventstore/db-client';
import { AppendDeadlineExceededError } from '../event-store.port.js';
import { EventStoreDBEventStore } from './eventstoredb-event-store.js';
import { transportFailureOf } from './eventstoredb-mapping.js';

const NOWHERE = 'esdb://127.0.0.1:1?tls=false&defaultDeadline=2500';
const NO_CLUSTER = 'esdb://127.0.0.1:1,127.0.0.1:2?tls=false&maxDiscoverAttempts=1&discoveryInterval=10';
const event = { id: '0b5e9a4c-35a1-4c1f-8d3e-6a2f1b7c9d01', type: 'Tested', data: {}, metadata: {} };

// No EventStoreDB server is needed: these are the adapter's ways of failing when it finds none.
describe('EventStoreDB adapter without a server', () => {
  it('stops a subscription aborted while the client still looks for its cluster: the iteration fails, and no rejection is left unhandled (which ends a Node 20 process)', async () => {
    // Two nodes that do not exist, discovery given up after one attempt. Jest fails the test on an
    // unhandled rejection of its own accord (the `process` a test sees is a sandbox's, whose
    // listeners Node never calls), so waiting past the rejection is the whole check.
    const store = EventStoreDBEventStore.connect(NO_CLUSTER);
    try {
      const controller = new AbortController();
      const first = store.subscribeToAll({ signal: controller.signal }).next();
      controller.abort();
      await expect(first).rejects.toThrow(/discover/);
      // An unhandled rejection is reported after the microtasks that could still handle it.
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      await store.close();
    }
  });

  it.each([
    ['one node that refuses connections', NOWHERE],
    ['a cluster whose discovery gives up', NO_CLUSTER],
  ])('answers as PostgreSQL does with %s: a read and an append that reached no server are DATABASE_UNAVAILABLE (503), not a 500', async (_, url) => {
    const store = EventStoreDBEventStore.connect(url);
    try {
      const read = store.readStream('token-account-nowhere');
      await expect(read).rejects.toBeInstanceOf(DatabaseUnavailableError);
      // The auditor's check and the problem filter read it as the database's failure, not a finding.
      expect(databaseUnavailableErrorOf(await read.catch((error: unknown) => error))).toBeInstanceOf(DatabaseUnavailableError);
      await expect(store.append('token-account-nowhere', [event], { expectedRevision: 'no_stream' })).rejects.toBeInstanceOf(DatabaseUnavailableError);
    } finally {
      await store.close();
    }
  });

  it("answers an append whose outcome is unknown (the connection lost once made, the server's deadline) with APPEND_DEADLINE_EXCEEDED naming the connection string's deadline", async () => {
    const store = EventStoreDBEventStore.connect(NOWHERE);
    // The client as the server would fail it mid-call: gRPC's raw status, as an append rejects with.
    const lost = Object.assign(new Error('14 UNAVAILABLE: Connection dropped'), { code: 14, details: 'Connection dropped' });
    (store as unknown as { client: { appendToStream: () => Promise<never> } }).client.appendToStream = () => Promise.reject(lost);
    try {
      const appended = await store.append('token-account-nowhere', [event], { expectedRevision: 'no_stream' }).catch((error: unknown) => error);
      expect(appended).toBeInstanceOf(AppendDeadlineExceededError);
      expect(appended).toMatchObject({ streamId: 'token-account-nowhere', applied: 'unknown', deadlineMs: 2_500, cause: lost });
    } finally {
      await store.close();
    }
  });
});

describe('EventStoreDB transport failures', () => {
  it('tells a failed connection from an answer, and whether the call may have reached a server', () => {
    expect(transportFailureOf(new DeadlineExceededError(undefined, 'deadline'))).toEqual({ sent: true });
    expect(transportFailureOf({ code: 4, details: 'Deadline exceeded', message: '4 DEADLINE_EXCEEDED: Deadline exceeded' })).toEqual({ sent: true });
    expect(transportFailureOf({ code: 14, details: 'Connection dropped', message: '14 UNAVAILABLE: Connection dropped' })).toEqual({ sent: true });
    expect(transportFailureOf(new UnavailableError(undefined, '14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED'))).toEqual({ sent: false });
    expect(transportFailureOf(new Error('Failed to discover after 10 attempts.'))).toEqual({ sent: false });
    for (const answer of [new StreamNotFoundError(undefined, 'no stream'), new Error('a bug'), 'text', null]) expect(transportFailureOf(answer)).toBeUndefined();
  });
});

