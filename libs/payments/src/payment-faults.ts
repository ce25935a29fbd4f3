/**
 * The named points of the payment flows where a crash leaves the provider and the ledger apart: after
 * each provider call that changes or reads money, before the append that records it, and after a
 * refund's intent, before the provider is called; and after a dispute's append, before the webhook
 * that reported it records its delivery (the provider sends it again).
 */
export const PAYMENT_FAULT_POINTS = [
  'initiate:after-create-order',
  'capture:after-provider-capture',
  'refund:after-intent',
  'refund:after-provider-refund',
  'refund:after-provider-failure',
  'reconcile:after-provider-order',
  'reconcile:after-provider-refund',
  'reconcile:after-provider-failure',
  'dispute:after-append',
] as const;

export type PaymentFaultPoint = (typeof PAYMENT_FAULT_POINTS)[number];

/**
 * Called at each fault point. Production passes none; tests throw (a crash of the flow) or kill the
 * process there (`PAYMENT_CRASH_AT`, accepted only with NODE_ENV=test), to show that a restart and a
 * reconciliation run end every payment exactly.
 */
export type PaymentFaults = (point: PaymentFaultPoint) => void;

export const NO_FAULTS: PaymentFaults = () => undefined;

/** Kills this process with SIGKILL at `point`: no handler, no flush, as a power cut or an OOM kill would. */
export function killAt(point: PaymentFaultPoint): PaymentFaults {
  return (reached) => {
    if (reached === point) process.kill(process.pid, 'SIGKILL');
  };
}
