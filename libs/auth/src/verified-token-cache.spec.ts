import type { Actor } from './actor.js';
import { VerifiedTokenCache } from './verified-token-cache.js';

const service: Actor = { subject: '6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40', role: 'service', kind: 'jwt' };
const admin: Actor = { subject: '0b6c8d1e-2f3a-4b5c-8d7e-9f0a1b2c3d4e', role: 'admin', kind: 'jwt' };
const window = { validFromSeconds: 1_000, validUntilSeconds: 2_000 };

describe('VerifiedTokenCache', () => {
  it('answers a remembered token only while its claims accept it: from nbf, until exp', () => {
    const cache = new VerifiedTokenCache({ entryAgeSecondsMax: 60, entriesMax: 10 });
    cache.remember('token-a', service, window, 0);
    expect(cache.get('token-a', 1_500, 1)).toEqual(service);
    expect(cache.get('token-a', 1_000, 1)).toEqual(service);
    expect(cache.get('token-a', 999, 1)).toBeUndefined();
    expect(cache.get('token-a', 2_000, 1)).toBeUndefined();
    expect(cache.get('token-b', 1_500, 1)).toBeUndefined();
  });

  it('forgets a token when the entry age runs out, however long the token is valid', () => {
    const cache = new VerifiedTokenCache({ entryAgeSecondsMax: 60, entriesMax: 10 });
    cache.remember('token-a', service, { validFromSeconds: Number.NEGATIVE_INFINITY, validUntilSeconds: Number.POSITIVE_INFINITY }, 5_000);
    expect(cache.get('token-a', 1_500, 64_999)).toEqual(service);
    expect(cache.get('token-a', 1_500, 65_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('holds at most entriesMax tokens, forgetting the one remembered longest ago', () => {
    const cache = new VerifiedTokenCache({ entryAgeSecondsMax: 60, entriesMax: 2 });
    cache.remember('token-a', service, window, 0);
    cache.remember('token-b', admin, window, 0);
    cache.remember('token-a', service, window, 1);
    cache.remember('token-c', admin, window, 2);
    expect(cache.size).toBe(2);
    expect(cache.get('token-b', 1_500, 3)).toBeUndefined();
    expect(cache.get('token-a', 1_500, 3)).toEqual(service);
    expect(cache.get('token-c', 1_500, 3)).toEqual(admin);
  });

  it('hands out an actor no caller can change for the next request', () => {
    const cache = new VerifiedTokenCache({ entryAgeSecondsMax: 60, entriesMax: 10 });
    const actor: { -readonly [K in keyof Actor]: Actor[K] } = { ...service };
    cache.remember('token-a', actor, window, 0);
    actor.subject = 'someone-else';
    const remembered = cache.get('token-a', 1_500, 1);
    expect(remembered).toEqual(service);
    expect(Object.isFrozen(remembered)).toBe(true);
  });
});
