import { fold, type Decider } from '../decider.js';
import { LedgerError, type LedgerErrorCode, type LedgerErrorDetails } from '../ledger.errors.js';

/**
 * given(events).when(command).then(events) for a pure decider: the specification style of Emmett and
 * Oskar Dudycz's samples. `then` checks the decided events exactly; `thenThrows` checks the code and,
 * when given, the details and the message (the problem's `detail` a client reads); `thenNothing`
 * checks an idempotent no-op.
 */
export function deciderSpecification<Command, Event, State>(decider: Decider<Command, Event, State>) {
  return {
    given(events: readonly Event[]) {
      return {
        when(command: Command) {
          const run = () => decider.decide(command, fold(decider, decider.initialState, events));
          return {
            then(expected: readonly Event[]): void {
              expect(run()).toEqual(expected);
            },
            thenNothing(): void {
              expect(run()).toEqual([]);
            },
            thenThrows(code: LedgerErrorCode, details?: LedgerErrorDetails, message?: string): void {
              let thrown: unknown;
              try {
                run();
              } catch (error) {
                thrown = error;
              }
              expect(thrown).toBeInstanceOf(LedgerError);
              expect((thrown as LedgerError).code).toBe(code);
              if (details !== undefined) expect((thrown as LedgerError).details).toMatchObject(details);
              if (message !== undefined) expect((thrown as LedgerError).message).toBe(message);
            },
          };
        },
      };
    },
  };
}
