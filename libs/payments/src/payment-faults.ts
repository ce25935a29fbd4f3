/**
 * The named points of the payment flows where a crash leaves the provider and the ledger apart: after
 * each provider call that changes or reads money, before the append that records it, and after a
 * refund's intent, before the provider is called; after a dispute's append, before the webhook
 * that reported it records its delivery (the provider sends it again); and after any webhook's work,
 * before its delivery is recorded.
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
  'webhook:before-delivery-record',
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
