/** Rejections of the payments application layer (the ledger's own are `LedgerError`s). */
export type PaymentsErrorCode = 'PACKAGE_NOT_FOUND' | 'PROVIDER_UNAVAILABLE';

export class PaymentsError extends Error {
  override readonly name = 'PaymentsError';
  constructor(
    readonly code: PaymentsErrorCode,
    message: string,
    readonly details: Readonly<Record<string, string | number | null>> = {},
  ) {
    super(message);
  }
}
