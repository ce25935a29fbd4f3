import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { ACTIVE_HOLDS_MAX, decideTokenAccountWithState, initialTokenAccountState, LIVE_LOTS_MAX, type TokenAccountCommand, type TokenAccountState } from '@app/ledger';
import { median } from './measure.js';

/**
 * `npm run bench:domain [-- --pairs 200000 --rounds 5]`
 *
 * The ledger's own CPU cost per command, without I/O: on one account, what the command path does
 * in memory per command (decide on the state, then the state after the events), for hold + settle
 * pairs and for usages, and for usages on a crowded account (every lot and hold the limits allow
 * but one of each, the lots expiring). It prints the median of the rounds in CPU µs; compare runs by
 * their ratios (a pair's µs over two usages', a crowded account's usage over a fresh one's), which a
 * busy machine changes less than the absolute numbers.
 */
const USER_ID = 'bench-user';
const START = Date.parse('2026-01-01T00:00:00.000Z');

function main(): void {
  const { values } = parseArgs({ options: { pairs: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } } });
  const pairs = Number(values.pairs);
  const rounds = Number(values.rounds);
  const pairTimes: number[] = [];
  const usageTimes: number[] = [];
  const crowdedTimes: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    pairTimes.push(timed(pairs, holdAndSettle));
    usageTimes.push(timed(pairs * 2, usage));
    crowdedTimes.push(timed(Math.ceil(pairs / 20), usage, crowded));
  }
  const pairMicros = median(pairTimes);
  const usageMicros = median(usageTimes);
  const crowdedMicros = median(crowdedTimes);
  process.stdout.write(`Node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}; ${pairs} pairs and ${pairs * 2} usages on one account, median of ${rounds} rounds\n`);
  process.stdout.write(`hold + settle pair: ${pairMicros.toFixed(2)} µs\n`);
  process.stdout.write(`usage: ${usageMicros.toFixed(2)} µs\n`);
  process.stdout.write(`pair / two usages: ${(pairMicros / (2 * usageMicros)).toFixed(2)}\n`);
  process.stdout.write(`usage on an account with ${CROWDED_LOTS} lots (${CROWDED_LOTS - 1} expiring) and ${CROWDED_HOLDS} active holds: ${crowdedMicros.toFixed(2)} µs (${(crowdedMicros / usageMicros).toFixed(1)}x a usage)\n`);
}

const CROWDED_LOTS = LIVE_LOTS_MAX - 1;
const CROWDED_HOLDS = ACTIVE_HOLDS_MAX - 1;

/** A funded account with grants up to one short of LIVE_LOTS_MAX lots (priorities and expiries spread, all months away) and ACTIVE_HOLDS_MAX - 1 holds. */
function crowded(state: TokenAccountState): TokenAccountState {
  let crowd = state;
  for (let index = 1; index < CROWDED_LOTS; index += 1) {
    const expiresAt = new Date(START + 100 * 86_400_000 + ((index * 7_919) % CROWDED_LOTS) * 60_000);
    crowd = handle({ type: 'GrantTokens', data: { userId: USER_ID, amount: 1_000, reason: 'bench', priority: 10 + (index % 5), expiresAt, transactionId: `grant-${index}`, now: new Date(START) } }, crowd);
  }
  for (let index = 0; index < CROWDED_HOLDS; index += 1) {
    crowd = handle({ type: 'HoldTokens', data: { userId: USER_ID, holdId: `crowd-hold-${index}`, amount: 1, description: null, ttlSeconds: 86_400, ttlSecondsMax: 86_400, transactionId: `crowd-hold-tx-${index}`, now: new Date(START) } }, crowd);
  }
  return crowd;
}

/** What the command path computes in memory for one command: the decision, and the state after it. */
function handle(command: TokenAccountCommand, state: TokenAccountState): TokenAccountState {
  return decideTokenAccountWithState(command, state).state;
}

/** CPU µs per step of `count` steps on an account (fresh, or as `prepare` makes it) credited enough tokens for all of them. */
function timed(count: number, step: (state: TokenAccountState, index: number) => TokenAccountState, prepare: (funded: TokenAccountState) => TokenAccountState = (funded) => funded): number {
  const funded = handle(
    { type: 'AddTokens', data: { userId: USER_ID, paymentId: 'bench-payment', amount: 100 * count, description: null, transactionId: 'bench-purchase', now: new Date(START) } },
    initialTokenAccountState,
  );
  let state = prepare(funded);
  const balanceBefore = state.balance - funded.balance;
  // CPU time of this process, not wall time: on a shared machine the wait for a core is not the ledger's.
  const started = process.cpuUsage();
  for (let index = 0; index < count; index += 1) state = step(state, index);
  const { user, system } = process.cpuUsage(started);
  if (state.balance - balanceBefore !== 100 * count - 7 * count) throw new Error(`the bench account ends with ${state.balance} tokens`);
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
