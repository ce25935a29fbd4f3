/**
 * The service cannot start, for a reason the operator fixes by changing `variable` (or what it
 * points at): a port in use, a URL that does not parse, a database that does not answer. The
 * message names the variable and the cause, without secrets; the process exits non-zero with it.
 */
export class StartupError extends Error {
  override readonly name = 'StartupError';

  constructor(
    readonly variable: string,
    readonly reason: string,
  ) {
    super(`${variable}: ${reason}`);
  }
}
