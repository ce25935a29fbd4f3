import { formatPosition, type Position } from '@app/event-store';
import {
  decideTokenAccountWithState,
  invariant,
  LedgerError,
  tokenAccountDecider,
  tokenAccountStreamId,
  type Payment,
  type PurchaseLotTerms,
  type TokenAccountCommand,
  type TokenAccountEvent,
  type TokenAccountState,
} from '@app/ledger';
import { type CommandContext, CommandHandling, eventMetadata, type HandledCommand, type PaymentStreams, ReadModelConsistency, type Written } from '@app/event-sourcing';
import { paymentView, type PaymentWriteResult } from './payment.view.js';

/** What every payment flow needs of the ledger: the stream of a payment, its state, appends, and answers once the read models show them. */
export class PaymentLedger {
  constructor(
    readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    private readonly streams: PaymentStreams,
    /** The lot terms a capture of a package credits on. */
    readonly lotTermsOf: (packageId: string) => PurchaseLotTerms,
  ) {}

  async ownerOf(paymentId: string): Promise<string> {
    const userId = await this.streams.userOf(paymentId);
    if (userId === undefined) throw new LedgerError('PAYMENT_NOT_FOUND', `payment ${paymentId} does not exist`, { paymentId });
    return userId;
  }

  /** The account's state as this process knows it (decisions re-check it at the append's expected revision). */
  async load(userId: string): Promise<TokenAccountState> {
    return (await this.commands.load(tokenAccountStreamId(userId), tokenAccountDecider)).state;
  }

  decideAndAppend(userId: string, command: TokenAccountCommand, context: CommandContext): Promise<HandledCommand<TokenAccountState, TokenAccountEvent>> {
    return this.commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context) });
  }

  async result(userId: string, state: TokenAccountState, paymentId: string, written: Written): Promise<PaymentWriteResult> {
    invariant(paymentIn(state, paymentId).userId === userId, `payment ${paymentId} is in the stream of another user`);
    return { payment: paymentView(paymentIn(state, paymentId)), balance: state.balance, position: positionText(written.position), readModelUpToDate: await this.upToDate(written) };
  }

  /** Whether the read models show the write: at once when they committed with it, else once the runner has applied it. */
  upToDate(written: Written): Promise<boolean> {
    return this.consistency.waitFor(written.position, { committedWithAppend: written.readModelsCommitted === true });
  }
}

/** The payment in a state read from its stream; absent means the append never happened. */
export function paymentIn(state: TokenAccountState, paymentId: string): Payment {
  const payment = state.payments.get(paymentId);
  if (payment === undefined) throw new LedgerError('PAYMENT_NOT_FOUND', `payment ${paymentId} does not exist`, { paymentId });
  return payment;
}

export function positionText(position: Position | undefined): string | null {
  return position === undefined ? null : formatPosition(position);
}
