import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { decideTokenAccountWithState, initialTokenAccountState, type TokenAccountCommand, type TokenAccountState } from '@app/ledger';
import { median } from './measure.js';

/**
 * `npm run bench:domain [-- --pairs 200000 --rounds 5]`
 *
 * The ledger's own CPU cost per command, without I/O: on one account, what the command path does
 * in memory per command (decide on the state, then the state after the events), for hold + settle
 * pairs and for usages. It prints the median of the rounds in CPU µs; compare runs by their ratio
 * (a pair's µs over two usages'), which a busy machine changes less than the absolute numbers.
 */
const USER_ID = 'bench-user';
const START = Date.parse('2026-01-01T00:00:00.000Z');

function main(): void {
  const { values } = parseArgs({ options: { pairs: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } } });
  const pairs = Number(values.pairs);
  const rounds = Number(values.rounds);
  const pairTimes: number[] = [];
  const usageTimes: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    pairTimes.push(timed(pairs, holdAndSettle));
    usageTimes.push(timed(pairs * 2, usage));
  }
  const pairMicros = median(pairTimes);
  const usageMicros = median(usageTimes);
  process.stdout.write(`Node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}; ${pairs} pairs and ${pairs * 2} usages on one account, median of ${rounds} rounds\n`);
  process.stdout.write(`hold + settle pair: ${pairMicros.toFixed(2)} µs\n`);
  process.stdout.write(`usage: ${usageMicros.toFixed(2)} µs\n`);
  process.stdout.write(`pair / two usages: ${(pairMicros / (2 * usageMicros)).toFixed(2)}\n`);
}

/** What the command path computes in memory for one command: the decision, and the state after it. */
function handle(command: TokenAccountCommand, state: TokenAccountState): TokenAccountState {
  return decideTokenAccountWithState(command, state).state;
}

/** CPU µs per step of `count` steps on a fresh account holding enough tokens for all of them. */
function timed(count: number, step: (state: TokenAccountState, index: number) => TokenAccountState): number {
  let state = handle(
    { type: 'AddTokens', data: { userId: USER_ID, paymentId: 'bench-payment', amount: 100 * count, description: null, transactionId: 'bench-purchase', now: new Date(START) } },
    initialTokenAccountState,
  );
  // CPU time of this process, not wall time: on a shared machine the wait for a core is not the ledger's.
  const started = process.cpuUsage();
  for (let index = 0; index < count; index += 1) state = step(state, index);
  const { user, system } = process.cpuUsage(started);
  if (state.balance !== 100 * count - 7 * count) throw new Error(`the bench account ends with ${state.balance} tokens`);
  return (user + system) / count;
}

function holdAndSettle(state: TokenAccountState, index: number): TokenAccountState {
  const holdId = `hold-${index}`;
  const held = handle(
    { type: 'HoldTokens', data: { userId: USER_ID, holdId, amount: 10, description: 'bench', ttlSeconds: 600, ttlSecondsMax: 3600, transactionId: `hold-tx-${index}`, now: new Date(START + index * 1_000) } },
    state,
  );
  return handle({ type: 'SettleHold', data: { userId: USER_ID, holdId, amount: 7, description: null, transactionId: `settle-tx-${index}`, now: new Date(START + index * 1_000 + 500) } }, held);
}

function usage(state: TokenAccountState, index: number): TokenAccountState {
  return handle({ type: 'UseTokens', data: { userId: USER_ID, amount: 7, description: 'bench', transactionId: `use-tx-${index}`, now: new Date(START + index * 1_000) } }, state);
}


main();
