import { legacyRequestHash, normalizedUrl, requestFingerprints, type FingerprintedRequest } from './request-fingerprint.js';

const USER_ID = '0b7c5f1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e';
const HOLD_ID = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
const usage = (body: unknown, userId = USER_ID): FingerprintedRequest => ({ method: 'POST', url: `/v1/accounts/${userId}/usage`, body });
const current = (request: FingerprintedRequest) => requestFingerprints(request).fingerprint;

describe('legacy fingerprint', () => {
  it('is byte for byte what versions before v2 stored: SHA-256 of "METHOD url\\ncanonical body", the url as sent', () => {
    // Computed outside this code: printf 'POST /v1/accounts/0B7C…/usage\n{"amount":30,"description":"Chat"}' | sha256sum
    expect(legacyRequestHash(usage({ description: 'Chat', amount: 30 }, USER_ID.toUpperCase()))).toBe('5376d664e5e6b7605fd30adf114a7196ad99bfa5199eb8cfc7402f06d07653f2');
    expect(legacyRequestHash(usage({ amount: 30 }))).toBe('9ee4cc2db6756ae5d29b4baac4699b8295b0552729a5b8f0b99cb1fb9ef7f95a');
  });

  it('tells a null member and a path UUID in another case apart, as those versions did', () => {
    expect(legacyRequestHash(usage({ amount: 30, description: null }))).not.toBe(legacyRequestHash(usage({ amount: 30 })));
    expect(legacyRequestHash(usage({ amount: 30 }, USER_ID.toUpperCase()))).not.toBe(legacyRequestHash(usage({ amount: 30 })));
  });
});

describe('current fingerprint', () => {
  it('is versioned, so that no stored legacy fingerprint can equal it', () => {
    expect(current(usage({ amount: 30 }))).toMatch(/^v2:[0-9a-f]{64}$/);
  });

  it('reads a top-level member that is null as missing', () => {
    expect(current(usage({ amount: 30, description: null, metadata: null }))).toBe(current(usage({ amount: 30 })));
  });

  it('reads no body as an empty object, as the routes that take none do', () => {
    const release = (body: unknown): FingerprintedRequest => ({ method: 'POST', url: `/v1/accounts/${USER_ID}/holds/${HOLD_ID}/release`, body });
    expect(current(release(undefined))).toBe(current(release({})));
    expect(current(release(undefined))).not.toBe(current(release({ amount: 1 })));
  });

  it('reads a path UUID in either case as the same', () => {
    expect(current(usage({ amount: 30 }, USER_ID.toUpperCase()))).toBe(current(usage({ amount: 30 })));
    const settle = (url: string): FingerprintedRequest => ({ method: 'POST', url, body: { amount: 5 } });
    expect(current(settle(`/v1/accounts/${USER_ID.toUpperCase()}/holds/${HOLD_ID}/settle`))).toBe(current(settle(`/v1/accounts/${USER_ID}/holds/${HOLD_ID.toUpperCase()}/settle`)));
  });

  it.each([
    ['another amount', { amount: 31 }],
    ['a description', { amount: 30, description: 'Chat' }],
    ['an empty description', { amount: 30, description: '' }],
    ['empty metadata', { amount: 30, metadata: {} }],
    ['a null nested in metadata', { amount: 30, metadata: { model: null } }],
    ['no body', undefined],
  ])('tells %s apart from the request without it', (_, body) => {
    expect(current(usage(body))).not.toBe(current(usage({ amount: 30 })));
  });

  it('tells a nested null apart from a missing nested member', () => {
    expect(current(usage({ amount: 30, metadata: { model: null, requestId: 'a' } }))).not.toBe(current(usage({ amount: 30, metadata: { requestId: 'a' } })));
  });

  it('tells another method apart', () => {
    expect(current({ ...usage({ amount: 30 }), method: 'PUT' })).not.toBe(current(usage({ amount: 30 })));
  });
});

describe('normalizedUrl', () => {
  it('lower-cases the UUID-shaped path segments and nothing else', () => {
    expect(normalizedUrl(`/v1/accounts/${USER_ID.toUpperCase()}/holds/${HOLD_ID.toUpperCase()}/settle`)).toBe(`/v1/accounts/${USER_ID}/holds/${HOLD_ID}/settle`);
    expect(normalizedUrl('/v1/admin/projections/Balances/rebuild')).toBe('/v1/admin/projections/Balances/rebuild');
    expect(normalizedUrl(`/v1/accounts/${USER_ID.toUpperCase()}X/usage`)).toBe(`/v1/accounts/${USER_ID.toUpperCase()}X/usage`);
  });

  it('decodes percent-escapes of unreserved characters in the path, as the router does (RFC 3986 6.2.2.2), before it reads a UUID', () => {
    const escaped = `%3${USER_ID[0]}${USER_ID.slice(1, 8)}%2D${USER_ID.slice(9)}`;
    expect(normalizedUrl(`/v1/accounts/${escaped}/usage`)).toBe(`/v1/accounts/${USER_ID}/usage`);
    expect(normalizedUrl('/v1/accounts/%41%7e/usage')).toBe('/v1/accounts/A~/usage');
    // Reserved and other characters stay escaped: decoded, they would change what the path says.
    expect(normalizedUrl('/v1/accounts/a%2Fb%20c%25/usage')).toBe('/v1/accounts/a%2Fb%20c%25/usage');
  });

  it('keeps the query string as sent, but for a bare "?", which is no query at all', () => {
    expect(normalizedUrl(`/v1/accounts/${USER_ID.toUpperCase()}/usage?Ref=${HOLD_ID.toUpperCase()}`)).toBe(`/v1/accounts/${USER_ID}/usage?Ref=${HOLD_ID.toUpperCase()}`);
    expect(normalizedUrl(`/v1/accounts/${USER_ID}/usage?`)).toBe(`/v1/accounts/${USER_ID}/usage`);
    expect(normalizedUrl(`/v1/accounts/${USER_ID}/usage?a=%41`)).toBe(`/v1/accounts/${USER_ID}/usage?a=%41`);
  });
});
