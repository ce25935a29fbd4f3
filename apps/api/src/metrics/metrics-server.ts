import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceMetrics } from './service-metrics.js';

export type MetricsServer = {
  /** `http://host:port/metrics`, with the port actually bound (METRICS_PORT=0 picks a free one). */
  readonly url: string;
  close(): Promise<void>;
};

/**
 * `GET /metrics` on a port of its own, apart from the API: no credentials, so it is bound to
 * loopback unless METRICS_HOST says otherwise (a scraper on the same machine or in the same pod).
 * Anything else answers 404; a scrape whose gauges fail (the database is down) answers 503.
 */
export async function startMetricsServer(metrics: ServiceMetrics, { host, port }: { readonly host: string; readonly port: number }): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.text().then(
      ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
      (error: unknown) => response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics unavailable: ${error instanceof Error ? error.message : String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
