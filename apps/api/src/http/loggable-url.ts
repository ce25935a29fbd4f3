/** An API key anywhere in a text (`tlk_` + its 24-character id + `_` + its 43-character secret). */
const API_KEY_IN_TEXT = /tlk_([0-9a-f]{24})_[A-Za-z0-9_-]{43}/g;

/**
 * A request's URL as the log may hold it: an API key pasted into a path (as `DELETE
 * /v1/admin/api-keys/<the whole key>`, which the CLI's `revoke` accepts and the route does not) keeps
 * its id, its secret replaced, so the log never holds a key that works.
 */
export function loggableUrl(url: string): string {
  return url.replace(API_KEY_IN_TEXT, 'tlk_$1_[secret removed]');
}
