import type { Actor } from './actor.js';

/** How long a verified token is answered from memory before jose verifies it again. */
export const VERIFIED_TOKEN_CACHE_SECONDS = 60;
/** Tokens remembered at once; when full, the one remembered longest ago is forgotten. */
export const VERIFIED_TOKEN_CACHE_ENTRIES_MAX = 10_000;

export type VerifiedTokenCacheOptions = {
  readonly entryAgeSecondsMax: number;
  readonly entriesMax: number;
};

/** The times, in seconds since the epoch as jose counts them, at which the token's claims accept it. */
export type TokenValidity = {
  /** `nbf` less the clock tolerance (minus infinity when the token has no `nbf`). */
  readonly validFromSeconds: number;
  /** `exp` plus the clock tolerance: from this second on the token has expired. */
  readonly validUntilSeconds: number;
};

type Entry = TokenValidity & { readonly actor: Actor; readonly forgetAtMs: number };

/**
 * Tokens jose has accepted, with the actor each stands for. Verifying a token depends only on the
 * token, the keys and the time. With the same keys, a token accepted once is accepted again while
 * the time is inside the window its `nbf` and `exp` claims allow, so a hit checks that window and
 * nothing else; outside it, the caller verifies with jose, which gives the precise refusal.
 *
 * Keys can change only under a remote JWKS (an identity provider withdrawing a key). An entry is
 * forgotten `entryAgeSecondsMax` after it was remembered, so a token signed by a withdrawn key is
 * honoured at most that much longer than jose alone would (jose itself keeps a fetched key set for up
 * to 10 minutes). Refusals are never remembered: each is judged again, and logged with its reason.
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: VerifiedTokenCacheOptions = { entryAgeSecondsMax: VERIFIED_TOKEN_CACHE_SECONDS, entriesMax: VERIFIED_TOKEN_CACHE_ENTRIES_MAX }) {}

  /** The actor of `token` if it was accepted less than the entry age ago and its claims accept it at `nowSeconds`. */
  get(token: string, nowSeconds: number, nowMs: number): Actor | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (nowMs >= entry.forgetAtMs) {
      this.entries.delete(token);
      return undefined;
    }
    return nowSeconds >= entry.validFromSeconds && nowSeconds < entry.validUntilSeconds ? entry.actor : undefined;
  }

  remember(token: string, actor: Actor, validity: TokenValidity, nowMs: number): void {
    this.entries.delete(token);
    if (this.entries.size >= this.options.entriesMax) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(token, { ...validity, actor: Object.freeze({ ...actor }), forgetAtMs: nowMs + this.options.entryAgeSecondsMax * 1_000 });
  }

  get size(): number {
    return this.entries.size;
  }
}
