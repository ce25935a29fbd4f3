import type { Decider } from '../decider';
import type { TokenAccountCommand } from './token-account.commands';
import { decideTokenAccount } from './token-account.decide';
import type { TokenAccountEvent } from './token-account.events';
import { evolveTokenAccount, initialTokenAccountState, type TokenAccountState } from './token-account.state';

export const tokenAccountDecider: Decider<TokenAccountCommand, TokenAccountEvent, TokenAccountState> = {
  decide: decideTokenAccount,
  evolve: evolveTokenAccount,
  initialState: initialTokenAccountState,
};
