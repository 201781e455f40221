// Starts the gateway and services in this jest process, each as its own broker over the real NATS,
// against the real FerretDB and Redis, in a namespace and database of its own.
import { ServiceBroker, Loggers } from "moleculer";
import { randomBytes } from "node:crypto";
import request from "supertest";
import type { AddressInfo } from "node:net";

export interface Cluster {
  url: string;
  adminToken: string;
  namespace: string;
  mongoUrl: string;
  /** The Redis stream this cluster writes a logical stream name to (tests set STREAM_PREFIX per cluster). */
  stream: (logical: string) => string;
  brokers: Record<string, ServiceBroker>;
  http: () => ReturnType<typeof request>;
  /** Stops one process's broker (as a crash would, minus the crash) and starts a fresh one in its place. */
  restart: (name: string) => Promise<ServiceBroker>;
  /** Stops one process's broker cleanly and leaves it stopped (start it again with `restart`). */
  stopProcess: (name: string) => Promise<void>;
  /**
   * Makes one process's broker vanish as a killed process would: no goodbye on NATS, no more heartbeats,
   * its relay stopped, its replies never sent. `restart` then starts a fresh one without stopping it.
   */
  crash: (name: string) => Promise<void>;
  /** Bearer header of the bootstrap token. */
  auth: (token?: string) => { Authorization: string };
  stop: () => Promise<void>;
}

export interface ClusterOptions {
  /** Process names from deploy/local/services.ts; the gateway is always included. */
  processes?: string[];
  env?: Record<string, string>;
  /** Every log call of every broker, at every level, serialised into this array (for secret checks). */
  captureLogs?: string[];
}

/** A Moleculer logger that records each call's arguments instead of printing them. */
function captureLogger(sink: string[]) {
  const Base = (Loggers as any).Base;
  return new (class extends Base {
    getLogHandler(bindings: Record<string, unknown>) {
      return (type: string, args: unknown[]) => {
        sink.push(JSON.stringify({ type, mod: bindings?.mod, args }, (_k, v) => (v instanceof Error ? { name: v.name, message: v.message, data: (v as any).data } : v)));
      };
    }
  })() as any;
}

export const TEST_STREAMS_KEY = "0123456789abcdef".repeat(4);

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const processes = ["gateway", ...(opts.processes ?? ["zones"]).filter((n) => n !== "gateway")];
  const suffix = randomBytes(4).toString("hex");
  const namespace = `t${suffix}`;
  const mongo = new URL(process.env.TEST_MONGO_URL ?? process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  mongo.pathname = `/test_${suffix}`;
  const mongoUrl = mongo.toString();
  const adminToken = "cat_" + randomBytes(32).toString("base64url");
  Object.assign(process.env, {
    CARACAL_MODE: "dev",
    NAMESPACE: namespace,
    MONGO_URL: mongoUrl,
    PORT: "0",
    ADMIN_TOKEN: adminToken,
    STREAMS_HMAC_KEY: TEST_STREAMS_KEY,
    AUDIT_HMAC_KEY: TEST_STREAMS_KEY,
    ZONE_KEK: "11".repeat(32),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
    API_V1_RATE_LIMIT_PER_MIN: "100000",
    API_V1_ACTOR_RATE_LIMIT_PER_MIN: "100000",
    ADMIN_AUTH_FAIL_LIMIT_PER_MIN: "100000",
    READY_RATE_LIMIT_PER_MIN: "0",
    OUTBOX_POLL_MS: "50",
    READY_SERVICES: processes.filter((p) => p !== "gateway").join(","),
    // Clusters of parallel suites share one Redis: each writes its own streams.
    STREAM_PREFIX: `${namespace}:`,
    ...opts.env,
  });
  const streamPrefix = process.env.STREAM_PREFIX ?? "";
  const { resetConfig } = await import("../../shared/config");
  resetConfig();
  const { brokerOptions, EmbeddedPrometheusReporter } = await import("../../shared/broker");
  const { PROCESSES } = await import("../../deploy/local/services");

  const names = processes;
  const brokers: Record<string, ServiceBroker> = {};
  const stopped = new Set<ServiceBroker>();
  let generation = 0;
  const makeBroker = async (name: string) => {
    const broker = new ServiceBroker(
      brokerOptions({
        nodeID: `${name}-${suffix}-${generation++}`,
        ...(opts.captureLogs ? { logger: captureLogger(opts.captureLogs) } : {}),
        metrics: name === "gateway" ? ({ enabled: true, reporter: [new (EmbeddedPrometheusReporter as any)({})] } as any) : { enabled: false },
      }),
    );
    for (const schema of await PROCESSES[name]!()) broker.createService(schema);
    return broker;
  };
  const crashed = new Set<ServiceBroker>();
  for (const name of names) brokers[name] = await makeBroker(name);
  await Promise.all(Object.values(brokers).map((b) => b.start()));
  const gateway = brokers.gateway!;
  await gateway.waitForServices(names.filter((n) => n !== "gateway"), 20_000);
  const server = (gateway.getLocalService("api") as any).server;
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    adminToken,
    namespace,
    mongoUrl,
    stream: (logical: string) => streamPrefix + logical,
    brokers,
    http: () => request(url),
    stopProcess: async (name: string) => {
      await brokers[name]!.stop();
      stopped.add(brokers[name]!);
    },
    restart: async (name: string) => {
      if (!crashed.has(brokers[name]!) && !stopped.has(brokers[name]!)) await brokers[name]!.stop();
      const fresh = await makeBroker(name);
      await fresh.start();
      brokers[name] = fresh;
      await gateway.waitForServices(name === "gateway" ? [] : [name], 20_000);
      return fresh;
    },
    crash: async (name: string) => {
      const broker = brokers[name]! as any;
      crashed.add(broker);
      broker.registry.discoverer.stopHeartbeatTimers();
      for (const svc of broker.services) await svc.relay?.stop?.();
      await broker.transit.tx.client?.close();
    },
    auth: (token = adminToken) => ({ Authorization: `Bearer ${token}` }),
    stop: async () => {
      await Promise.all(Object.values(brokers).filter((b) => !crashed.has(b) && !stopped.has(b)).map((b) => b.stop()));
      // A crashed broker is never stopped (its handlers may still wait); only its store connections are closed.
      for (const b of crashed) for (const svc of (b as any).services) await svc.db?.close?.().catch(() => undefined);
      const mongoose = (await import("mongoose")).default;
      const conn = await mongoose.createConnection(mongoUrl).asPromise();
      await conn.dropDatabase().catch(() => undefined);
      await conn.close();
      const { closeRedisClients } = await import("../../shared/redis");
      await closeRedisClients();
    },
  };
}

/** Polls until `check` returns a value (not undefined) or the time runs out. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
