import { createHash } from 'node:crypto';

/** A keyed request as its fingerprint sees it: method, url as received (path and query), parsed JSON body. */
export type FingerprintedRequest = { readonly method: string; readonly url: string; readonly body: unknown };

/**
 * The two fingerprints of one request (docs/adr/0008, addendum). `legacyHash` is what every version
 * computes, over the path as sent and the body as sent: a key row stores it as `request_hash`, and
 * request ids derive from it. `fingerprint` reads the request as the API does (a path UUID in either
 * case or percent-escaped, a top-level null as missing, no body as `{}`): a retry that matches it is the same request.
 */
export type RequestFingerprints = { readonly legacyHash: string; readonly fingerprint: string };

const FINGERPRINT_VERSION_PREFIX = 'v2:';
const UUID_SEGMENT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function requestFingerprints(request: FingerprintedRequest): RequestFingerprints {
  return {
    legacyHash: legacyRequestHash(request),
    fingerprint: FINGERPRINT_VERSION_PREFIX + sha256(`${request.method} ${normalizedUrl(request.url)}\n${canonicalJson(withoutTopLevelNulls(request.body))}`),
  };
}

/**
 * The fingerprint of versions before `v2`, unchanged, byte for byte: SHA-256 of method, url as sent and
 * the body in canonical form. Changing it would break recognising the keys they claimed.
 */
export function legacyRequestHash({ method, url, body }: FingerprintedRequest): string {
  return sha256(`${method} ${url}\n${canonicalJson(body)}`);
}

/**
 * The url as the router reads it where that cannot change its meaning: in the path, percent-escapes
 * of unreserved characters decoded (RFC 3986 6.2.2.2: `%2D` is `-`) and then UUID-shaped segments in
 * lower case, because every path parameter of a keyed route that takes a UUID reads it in either case
 * (`IsCanonicalUuid`), so every spelling names the same account, hold, lot or payment. Other escapes
 * stay (decoded, `%2F` would be a separator); the query is kept as sent, but a bare `?` is none.
 */
export function normalizedUrl(url: string): string {
  const queryAt = url.indexOf('?');
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  const query = queryAt === -1 || queryAt === url.length - 1 ? '' : url.slice(queryAt);
  return (
    path
      .split('/')
      .map((segment) => segment.replace(ESCAPED_UNRESERVED, (escape) => String.fromCharCode(Number.parseInt(escape.slice(1), 16))))
      .map((segment) => (UUID_SEGMENT.test(segment) ? segment.toLowerCase() : segment))
      .join('/') + query
  );
}

/** A percent-escape of an unreserved character (RFC 3986 2.3: letters, digits, `-`, `.`, `_`, `~`). */
const ESCAPED_UNRESERVED = /%(?:4[1-9A-Fa-f]|5[0-9Aa]|6[1-9A-Fa-f]|7[0-9Aa]|3[0-9]|2[Dd]|2[Ee]|5[Ff]|7[Ee])/g;

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
