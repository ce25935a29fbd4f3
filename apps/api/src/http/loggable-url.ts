/** A run of URL-safe characters as long as an API key's secret (43) or longer: a key, a secret, or anything else that long. */
const LONG_TOKEN = /[A-Za-z0-9_-]{43,}/g;

/** A well-formed API key's start: `tlk_` and its 24-character id, which is not secret. */
const KEY_ID = /^tlk_([0-9a-f]{24})_/;

/**
 * A request's URL as the log may hold it: an API key pasted into a path (as `DELETE
 * /v1/admin/api-keys/<the whole key>`, which the CLI's `revoke` accepts and the route does not)
 * keeps its id and loses its secret; any other run of 43 or more URL-safe characters (a key with a
 * mistyped id, a secret alone, a long cursor) is left out whole. So the log never holds a secret
 * that, with an id anyone may read, makes a key that works.
 */
export function loggableUrl(url: string): string {
  return url.replace(LONG_TOKEN, (token) => {
    const key = KEY_ID.exec(token);
    return key === null ? '[removed]' : `tlk_${key[1]}_[secret removed]`;
  });
}
