import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components, operations, paths } from './schema.js';

export type { components, operations, paths };

/** An RFC 9457 problem as the service sends it; each operation's error type narrows `code` to the codes it can answer. */
export type Problem = components['schemas']['Problem'];

/** How the client proves who it is: a JWT (users, operators) or an API key (services); none for the public routes. */
export type Auth = { readonly bearerToken: string } | { readonly apiKey: string };

export type TokenLedgerClientOptions = Omit<ClientOptions, 'baseUrl'> & {
  /** Where the service is, e.g. `http://localhost:3000` (the paths carry `/v1`). */
  readonly baseUrl: string;
  readonly auth?: Auth;
};

/** A typed client of every operation in the document the service serves (openapi-fetch over `fetch`). */
export type TokenLedgerClient = Client<paths>;

/**
 * A client for one service and one caller. Calls return `{ data, error, response }`: `data` typed by
 * the operation's success response, `error` by its problem responses, so `error.code` can be
 * switched on exhaustively.
 */
export function createTokenLedgerClient({ baseUrl, auth, headers, ...options }: TokenLedgerClientOptions): TokenLedgerClient {
  return createClient<paths>({ ...options, baseUrl, headers: { ...credentialHeaders(auth), ...headersRecord(headers) } });
}

function credentialHeaders(auth: Auth | undefined): Record<string, string> {
  if (auth === undefined) return {};
  return 'apiKey' in auth ? { 'x-api-key': auth.apiKey } : { authorization: `Bearer ${auth.bearerToken}` };
}

function headersRecord(headers: ClientOptions['headers']): Record<string, string> {
  if (headers === undefined) return {};
  const record: Record<string, string> = {};
  if (headers instanceof Headers || Array.isArray(headers)) {
    new Headers(headers).forEach((value, name) => (record[name] = value));
    return record;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value !== null && value !== undefined) record[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return record;
}

/** Whether a call's error is a problem with this code (narrowing it to that code). */
export function isProblem<Code extends string>(error: unknown, code: Code): error is Problem & { readonly code: Code } {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
