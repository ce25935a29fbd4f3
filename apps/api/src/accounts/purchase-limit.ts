/** Injection token of PURCHASE_TOKENS_MAX: the most one purchase recorded over HTTP may credit. */
export const PURCHASE_TOKENS_MAX = Symbol('PURCHASE_TOKENS_MAX');
