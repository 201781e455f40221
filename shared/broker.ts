// Broker options every process shares: NATS transport, Pino logs without secrets, timeouts, metrics.
import type { BrokerOptions } from "moleculer";
import { MetricReporters } from "moleculer";
import { config } from "./config";
import { RequestContextMiddleware, requestIdMixin } from "./request-context";

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
    requestTimeout: 10_000,
    heartbeatInterval: 5,
    heartbeatTimeout: 15,
    tracking: { enabled: true, shutdownTimeout: 10_000 },
    metrics: { enabled: false },
    middlewares: [RequestContextMiddleware],
    ...overrides,
  } as BrokerOptions;
}
