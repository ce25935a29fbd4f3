import { startMetricsServer } from './metrics-server.js';
import { ServiceMetrics } from './service-metrics.js';

describe('metrics server', () => {
  it('serves GET /metrics in the Prometheus text format on the address it was given, and nothing else', async () => {
    const metrics = new ServiceMetrics();
    metrics.appendBatchSize.observe(3);
    metrics.observeJobRun('credit-expiry', 'failed', 250);
    metrics.projectionFailures.inc({ projection: 'token_accounts', cause: 'event' });
    metrics.projectionFallbacks.inc({ projection: 'token_accounts', from: 'set-based' });
    const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const response = await fetch(server.url);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      const text = await response.text();
      expect(text).toContain('token_ledger_group_commit_batch_appends_bucket{le="2"} 0');
      expect(text).toContain('token_ledger_group_commit_batch_appends_bucket{le="4"} 1');
      expect(text).toContain('token_ledger_job_runs_total{job="credit-expiry",outcome="failed"} 1');
      expect(text).toContain('token_ledger_job_run_duration_seconds_sum{job="credit-expiry"} 0.25');
      expect(text).toContain('token_ledger_projection_failures_total{projection="token_accounts",cause="event"} 1');
      expect(text).toContain('token_ledger_projection_fallbacks_total{projection="token_accounts",from="set-based"} 1');
      // The projection counters' other series are there at 0 from the start (rate() misses a series' first value).
      expect(text).toContain('token_ledger_projection_failures_total{projection="token_accounts",cause="other"} 0');
      expect(text).toContain('token_ledger_projection_fallbacks_total{projection="token_accounts",from="event-by-event"} 0');
      // Before the app connects the gauges read at scrape, they are empty rather than failing the scrape.
      expect(text).toContain('# TYPE token_ledger_payments_open gauge');
      expect((await fetch(server.url.replace('/metrics', '/'))).status).toBe(404);
      expect((await fetch(server.url, { method: 'POST' })).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('answers 503 when a gauge cannot be read (the database is down)', async () => {
    const metrics = new ServiceMetrics();
    metrics.readFrom({ projectionLags: () => Promise.reject(new Error('connection refused')), openPaymentsByStatus: () => Promise.resolve([]) });
    const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
    try {
      const response = await fetch(server.url);
      expect(response.status).toBe(503);
      expect(await response.text()).toContain('connection refused');
    } finally {
      await server.close();
    }
  });
});
