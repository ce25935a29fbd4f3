import { Client } from 'undici';

export type HttpRequest = { readonly method: 'GET' | 'POST'; readonly path: string; readonly body?: string; readonly headers?: Readonly<Record<string, string>> };

export type ClosedLoopOptions = {
  readonly origin: string;
  /** Concurrent clients; each has one keep-alive connection and one request in flight. */
  readonly clients: number;
  readonly count: number;
  readonly authorization: string;
  /** The request with the given index, 0 to count - 1; every index is requested once. */
  readonly request: (index: number) => HttpRequest;
  readonly expectedStatus: number;
  /** Called for each response with the expected status. */
  readonly onExpected?: (index: number) => void;
};

export type ClosedLoopResult = { readonly latenciesMs: Float64Array; readonly elapsedMs: number };

const REQUEST_TIMEOUT_MS = 30_000;
const ERROR_BODY_LENGTH_MAX = 1_000;

/**
 * Sends `count` requests from `clients` closed-loop clients (undici: about 24 µs of client CPU per
 * request here, against 39 for node:http with a keep-alive Agent; the load generator shares the
 * cores with the service and PostgreSQL). The first response with another status stops every client
 * and fails the run, naming the request and the response.
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const latenciesMs = new Float64Array(options.count);
  let next = 0;
  let failure: Error | undefined;
  const client = async () => {
    const connection = new Client(options.origin, { pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    try {
      for (let index = next++; index < options.count && failure === undefined; index = next++) {
        const request = options.request(index);
        const headers: Record<string, string> = request.body === undefined ? { authorization: options.authorization } : { authorization: options.authorization, 'content-type': 'application/json' };
        if (request.headers !== undefined) Object.assign(headers, request.headers);
        const started = performance.now();
        const response = await connection.request({ method: request.method, path: request.path, headers, body: request.body });
        if (response.statusCode !== options.expectedStatus) {
          const text = (await response.body.text()).slice(0, ERROR_BODY_LENGTH_MAX);
          failure ??= new Error(`${request.method} ${request.path} answered ${response.statusCode}, not ${options.expectedStatus}: ${text}`);
          return;
        }
        await response.body.dump();
        latenciesMs[index] = performance.now() - started;
        options.onExpected?.(index);
      }
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(String(error));
    } finally {
      await connection.close();
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: options.clients }, client));
  const elapsedMs = performance.now() - started;
  if (failure !== undefined) throw failure;
  return { latenciesMs, elapsedMs };
}
