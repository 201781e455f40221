// Broker options every process shares: NATS transport, Pino logs without secrets, timeouts, metrics.
import type { BrokerOptions } from "moleculer";
import { MetricReporters } from "moleculer";
import { config } from "./config";
import { RequestContextMiddleware, requestIdMixin } from "./request-context";
import { FastDiscoverer } from "./liveness";

/** Keys whose values never reach a log line. */
export const REDACT_PATHS = [
  "authorization", "*.authorization", "headers.authorization", "*.headers.authorization",
  "token", "*.token", "client_secret", "*.client_secret", "api_key", "*.api_key",
  "bearer_token", "*.bearer_token", "private_key", "*.private_key", "secret", "*.secret",
];

const Prometheus = (MetricReporters as any).Prometheus;
const BaseReporter = (MetricReporters as any).Base;

/**
 * Moleculer's Prometheus reporter without its own HTTP server: the gateway serves its text at
 * /metrics next to prom-client's registry, so there is one scrape target per gateway.
 */
export class EmbeddedPrometheusReporter extends Prometheus {
  init(registry: unknown): void {
    BaseReporter.prototype.init.call(this, registry);
    const labels = (this as any).opts.defaultLabels;
    (this as any).defaultLabels = typeof labels === "function" ? labels.call(this, registry) : labels;
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  text(): string {
    return (this as any).generatePrometheusResponse();
  }
}

export function brokerOptions(overrides: Partial<BrokerOptions> = {}): BrokerOptions {
  const cfg = config();
  return {
    namespace: cfg.namespace,
    transporter: { type: "NATS", options: { url: cfg.natsUrl } },
    logger: {
      type: "Pino",
      options: {
        level: cfg.logLevel as any,
        pino: { options: { redact: { paths: REDACT_PATHS, censor: "[redacted]" }, mixin: requestIdMixin } },
      },
    },
    requestTimeout: cfg.cluster.requestTimeoutMs,
    // A dead process must cost seconds, not a request timeout: see shared/liveness.ts and bench/failover.ts.
    ...(cfg.cluster.nodeTimeoutMs > 0
      ? { registry: { discoverer: new FastDiscoverer({ beatMs: cfg.cluster.heartbeatMs, timeoutMs: cfg.cluster.nodeTimeoutMs }) } }
      : { heartbeatInterval: Math.max(1, Math.round(cfg.cluster.heartbeatMs / 1000)), heartbeatTimeout: Math.max(2, Math.round(cfg.cluster.heartbeatMs / 1000) * 3) }),
    ...(cfg.cluster.circuitBreaker ? { circuitBreaker: { enabled: true, threshold: 0.5, minRequestCount: 5, windowTime: 10, halfOpenTime: 1_000 } } : {}),
    tracking: { enabled: true, shutdownTimeout: 10_000 },
    metrics: { enabled: false },
    middlewares: [RequestContextMiddleware],
    ...overrides,
  } as BrokerOptions;
}
