import { createHash } from 'node:crypto';

/** A keyed request as its fingerprint sees it: method, url as received (path and query), parsed JSON body. */
export type FingerprintedRequest = { readonly method: string; readonly url: string; readonly body: unknown };

/** A fingerprint, and the url that the request id is derived with beside it (`idempotentRequestId`). */
export type Fingerprint = { readonly hash: string; readonly url: string };

/**
 * The two fingerprints of one request. A new claim stores `current`; a key row holding either is this
 * request. `legacy` is what versions before `v2` stored, kept so that a key they claimed (kept 24 h)
 * is still recognised and its request id, hence its events' ids, derived as they derived it.
 */
export type RequestFingerprints = { readonly current: Fingerprint; readonly legacy: Fingerprint };

const CURRENT_VERSION_PREFIX = 'v2:';
const UUID_SEGMENT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function requestFingerprints(request: FingerprintedRequest): RequestFingerprints {
  const url = normalizedUrl(request.url);
  return {
    current: { hash: CURRENT_VERSION_PREFIX + sha256(`${request.method} ${url}\n${canonicalJson(withoutTopLevelNulls(request.body))}`), url },
    legacy: { hash: legacyRequestHash(request), url: request.url },
  };
}

/** The fingerprint a stored row holds, or undefined when the row belongs to another request. */
export function fingerprintHeld(fingerprints: RequestFingerprints, storedHash: string): Fingerprint | undefined {
  if (storedHash === fingerprints.current.hash) return fingerprints.current;
  if (storedHash === fingerprints.legacy.hash) return fingerprints.legacy;
  return undefined;
}

/**
 * The fingerprint of versions before `v2`, unchanged, byte for byte: SHA-256 of method, url as sent and
 * the body in canonical form. Changing it would break recognising the keys they claimed.
 */
export function legacyRequestHash({ method, url, body }: FingerprintedRequest): string {
  return sha256(`${method} ${url}\n${canonicalJson(body)}`);
}

/**
 * The url with its UUID-shaped path segments in lower case, and nothing else changed (not the query,
 * not percent-escapes): every path parameter of a keyed route that takes a UUID reads it in either
 * case (`IsCanonicalUuid`), so both spellings name the same account, hold, lot or payment.
 */
export function normalizedUrl(url: string): string {
  const queryAt = url.indexOf('?');
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  const query = queryAt === -1 ? '' : url.slice(queryAt);
  return (
    path
      .split('/')
      .map((segment) => (UUID_SEGMENT.test(segment) ? segment.toLowerCase() : segment))
      .join('/') + query
  );
}

/**
 * The body without its top-level members whose value is null, and no body as an empty object: every optional field of a request body
 * means the same missing or null (`IsOptional`, then `?? null`), and a required one null or missing is
 * refused alike. Nested values are compared as sent: metadata refuses a null value, it never omits one.
 */
function withoutTopLevelNulls(body: unknown): unknown {
  // No body reads as `{}`: a route that takes none accepts either (EmptyBody), one that takes a body refuses both.
  if (body === undefined) return {};
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== null));
}

/** JSON with object keys sorted, so that formatting and key order do not make another request. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
