import type { Decider } from '../decider.js';
import type { TokenAccountCommand } from './token-account.commands.js';
import { decideTokenAccount } from './token-account.decide.js';
import type { TokenAccountEvent } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';
import { evolveTokenAccount, initialTokenAccountState, type TokenAccountState } from './token-account.state.js';

export const tokenAccountDecider: Decider<TokenAccountCommand, TokenAccountEvent, TokenAccountState> = {
  decide: decideTokenAccount,
  evolve: evolveTokenAccount,
  initialState: initialTokenAccountState,
  snapshot: tokenAccountSnapshot,
};
