// Configuration read once from the environment, validated and typed; nothing else reads process.env.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

export type Mode = "dev" | "rc" | "stable";

export interface Config {
  mode: Mode;
  release: boolean;
  port: number;
  host: string;
  mongoUrl: string;
  /** Each service's mongoose pool; all services together stay within FerretDB's pool (see stack.sh). */
  mongoPoolSize: number;
  /** Updates and deletes one service has in flight; all services together stay within half of FerretDB's pool (shared/store/update-gate.ts). */
  mongoUpdateConcurrency: number;
  /** The PostgreSQL database behind a local FerretDB, where the stand-in's indexes are made (ignored on MongoDB). */
  storePostgresUrl: string;
  redisUrl: string;
  natsUrl: string;
  namespace: string;
  /** Put before every Redis stream name (publishing and consuming); empty: the interoperable names. */
  streamPrefix: string;
  logLevel: string;
  adminToken: string;
  adminTokenGenerated: boolean;
  streamsHmacKeys: { kid: string; key: Buffer }[];
  auditHmacKey: Buffer;
  zoneKek: Buffer;
  metricsBearer: string | null;
  bodyLimitBytes: number;
  /** HTTP server limits against slow or greedy clients (ms; connections per client IP). */
  http: { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number; maxConnectionsPerIp: number };
  /** How long an Idempotency-Key's first response is kept for replay. */
  idempotencyTtlSec: number;
  /** Writers that may wait for one document per process before the next is refused with 429. */
  writeQueueMax: number;
  /** Liveness between processes: heartbeat period and silence after which a node counts as gone (0 = Moleculer's own check). */
  cluster: { heartbeatMs: number; nodeTimeoutMs: number; requestTimeoutMs: number; circuitBreaker: boolean };
  rateLimitPerMin: number;
  actorRateLimitPerMin: number;
  authFailLimitPerMin: number;
  readyRateLimitPerMin: number;
  outbox: { pollMs: number; batch: number; leaseSec: number; maxAttempts: number; streamMaxLen: number; keepDispatched: number };
  opaBin: string;
  /** Time limit of one policy decision (evaluation only, not loading). */
  policyEvalTimeoutMs: number;
  opaUrl: string | null;
  docsEnabled: boolean;
  controlAudience: string;
  maxResourcesPerZone: number;
  /** DCR garbage collection interval. */
  dcrGcIntervalMs: number;
  /** Services /ready waits for; null means every service the route table names. */
  readyServices: string[] | null;
  /**
   * Test-only settings of the OAuth token exchange (grants service), off by default and refused in
   * release mode: token endpoints on loopback addresses, and one more trusted CA (a test's self-signed
   * certificate; deployments use NODE_EXTRA_CA_CERTS, read by Node at start).
   */
  oauthTest: { allowLoopback: boolean; caPem: string | null };
  /** Audit service: retention ceiling (days), stream consumers, zone-event SSE (see services/audit). */
  audit: { retentionMaxDays: number; claimIdleMs: number; maxDeliveries: number; retentionSweepMs: number; sseHeartbeatMs: number; sseClientBufferBytes: number };
  /** Consumer-group readers of the sessions service (shared/streams/consumer.ts). */
  streams: { batch: number; concurrency: number; blockMs: number; claimIdleMs: number; maxDeliveries: number };
  /** How often the sessions reaper expires the sessions of archived zones. */
  sessionsReaperMs: number;
}

function int(env: NodeJS.ProcessEnv, name: string, def: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return def;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

/** A boolean setting: unset, "", "false" or "0" is off; "true" or "1" is on; anything else is an error. */
function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? "").trim().toLowerCase();
  if (raw === "" || raw === "false" || raw === "0") return false;
  if (raw === "true" || raw === "1") return true;
  throw new Error(`${name} must be true or false, got "${env[name]}"`);
}

/** A hex key of at least 32 bytes; in dev a missing one is generated (and reported by the caller). */
function hexKey(env: NodeJS.ProcessEnv, name: string, release: boolean, generated: string[]): Buffer {
  const raw = env[name]?.trim();
  if (!raw) {
    if (release) throw new Error(`${name} is required when CARACAL_MODE is rc or stable (hex, at least 64 characters)`);
    generated.push(name);
    return randomBytes(32);
  }
  if (!/^([0-9a-fA-F]{2}){32,}$/.test(raw)) throw new Error(`${name} must be even-length hex of at least 32 bytes`);
  return Buffer.from(raw, "hex");
}

/** STREAM_PREFIX: optional, a short run of name characters (it becomes part of every stream key). */
function streamPrefix(env: NodeJS.ProcessEnv): string {
  const raw = env.STREAM_PREFIX?.trim() ?? "";
  if (!/^[A-Za-z0-9_.:-]{0,64}$/.test(raw)) throw new Error(`STREAM_PREFIX must be at most 64 of A-Z a-z 0-9 _ . : -, got "${raw.slice(0, 80)}"`);
  return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config & { generatedKeys: string[] } {
  const modeRaw = (env.CARACAL_MODE ?? "stable").trim() || "stable";
  if (!["dev", "rc", "stable"].includes(modeRaw)) throw new Error(`CARACAL_MODE must be dev, rc or stable, got "${modeRaw}"`);
  const mode = modeRaw as Mode;
  const release = mode !== "dev";
  const generated: string[] = [];

  let adminToken = env.ADMIN_TOKEN?.trim() ?? "";
  let adminTokenGenerated = false;
  if (!adminToken) {
    if (release) throw new Error("ADMIN_TOKEN is required when CARACAL_MODE is rc or stable");
    // Dev: derive a stable token from a seed kept in env by the launcher, else random per process tree.
    adminToken = "cat_" + randomBytes(32).toString("base64url");
    adminTokenGenerated = true;
  }

  // STREAMS_HMAC_KEY signs; STREAMS_HMAC_KEYS_OLD ("kid:hex,kid:hex") still verifies during rotation.
  const signKey = hexKey(env, "STREAMS_HMAC_KEY", release, generated);
  const streamsHmacKeys = [{ kid: (env.STREAMS_HMAC_KID ?? "k1").trim() || "k1", key: signKey }];
  for (const part of (env.STREAMS_HMAC_KEYS_OLD ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const [kid, hex] = part.split(":");
    if (!kid || !hex || !/^([0-9a-fA-F]{2}){32,}$/.test(hex)) throw new Error("STREAMS_HMAC_KEYS_OLD must be kid:hex pairs, comma separated");
    streamsHmacKeys.push({ kid, key: Buffer.from(hex, "hex") });
  }

  const zoneKek = hexKey(env, "ZONE_KEK", release, generated);
  if (zoneKek.length !== 32 || zoneKek.every((b) => b === 0)) throw new Error("ZONE_KEK must be 32 bytes of hex, not all zeros");

  const metricsBearer = env.METRICS_BEARER?.trim() || null;

  const allowLoopback = flag(env, "OAUTH_TEST_ALLOW_LOOPBACK");
  const caFile = env.OAUTH_TEST_CA_FILE?.trim() || null;
  if (release && (allowLoopback || caFile)) throw new Error("OAUTH_TEST_ALLOW_LOOPBACK and OAUTH_TEST_CA_FILE are test-only settings and are refused when CARACAL_MODE is rc or stable");

  return {
    mode,
    release,
    port: int(env, "PORT", 3000),
    host: env.HOST?.trim() || "127.0.0.1",
    mongoUrl: env.MONGO_URL?.trim() || "mongodb://127.0.0.1:27017/caracal",
    mongoPoolSize: int(env, "MONGO_POOL_SIZE", 10, 1),
    mongoUpdateConcurrency: int(env, "MONGO_UPDATE_CONCURRENCY", 4, 1),
    storePostgresUrl: env.STORE_POSTGRES_URL?.trim() || "postgres://postgres@127.0.0.1:5432/ferretdb",
    redisUrl: env.REDIS_URL?.trim() || "redis://127.0.0.1:6379",
    natsUrl: env.NATS_URL?.trim() || "nats://127.0.0.1:4222",
    namespace: env.NAMESPACE?.trim() || "caracal",
    streamPrefix: streamPrefix(env),
    logLevel: env.LOG_LEVEL?.trim() || "info",
    adminToken,
    adminTokenGenerated,
    streamsHmacKeys,
    auditHmacKey: hexKey(env, "AUDIT_HMAC_KEY", release, generated),
    zoneKek,
    metricsBearer,
    // Half of NATS's default max_payload (1 MiB): a body travels inside a larger request packet.
    bodyLimitBytes: int(env, "API_BODY_LIMIT_BYTES", 512 * 1024, 1),
    http: {
      headersTimeoutMs: int(env, "HTTP_HEADERS_TIMEOUT_MS", 10_000, 100),
      requestTimeoutMs: int(env, "HTTP_REQUEST_TIMEOUT_MS", 30_000, 100),
      keepAliveTimeoutMs: int(env, "HTTP_KEEP_ALIVE_TIMEOUT_MS", 5_000, 100),
      maxConnectionsPerIp: int(env, "HTTP_MAX_CONNECTIONS_PER_IP", 256, 1),
    },
    idempotencyTtlSec: int(env, "IDEMPOTENCY_TTL_SEC", 24 * 3600, 1),
    writeQueueMax: int(env, "WRITE_QUEUE_MAX", 512, 1),
    cluster: {
      heartbeatMs: int(env, "CLUSTER_HEARTBEAT_MS", 500, 50),
      nodeTimeoutMs: int(env, "CLUSTER_NODE_TIMEOUT_MS", 1500, 0),
      requestTimeoutMs: int(env, "CLUSTER_REQUEST_TIMEOUT_MS", 10_000, 100),
      circuitBreaker: (env.CLUSTER_CIRCUIT_BREAKER ?? "").trim() === "true",
    },
    rateLimitPerMin: int(env, "API_V1_RATE_LIMIT_PER_MIN", 600),
    actorRateLimitPerMin: int(env, "API_V1_ACTOR_RATE_LIMIT_PER_MIN", 1200),
    authFailLimitPerMin: int(env, "ADMIN_AUTH_FAIL_LIMIT_PER_MIN", 60),
    readyRateLimitPerMin: int(env, "READY_RATE_LIMIT_PER_MIN", 120),
    outbox: {
      pollMs: int(env, "OUTBOX_POLL_MS", 250, 10),
      batch: int(env, "OUTBOX_BATCH_SIZE", 32, 1),
      leaseSec: int(env, "OUTBOX_LOCK_SEC", 30, 1),
      maxAttempts: int(env, "OUTBOX_MAX_ATTEMPTS", 100, 1),
      streamMaxLen: int(env, "OUTBOX_STREAM_MAXLEN", 100000),
      // Published entries only make documents larger (FerretDB decodes every field on every read); the
      // services that read them back keep their own (policy sets: activation status).
      keepDispatched: int(env, "OUTBOX_KEEP_DISPATCHED", 0),
    },
    opaBin: env.OPA_BIN?.trim() || `${env.HOME ?? "/root"}/.cache/caracal-bin/opa`,
    opaUrl: env.OPA_URL?.trim() || null,
    policyEvalTimeoutMs: int(env, "POLICY_EVAL_TIMEOUT_MS", 1000, 1),
    docsEnabled: !release && (env.API_ENABLE_DOCS ?? "true").trim() !== "false",
    controlAudience: env.CONTROL_AUDIENCE?.trim() || "caracal-control",
    maxResourcesPerZone: int(env, "API_MAX_RESOURCES_PER_ZONE", 100000, 1),
    dcrGcIntervalMs: int(env, "DCR_GC_INTERVAL_MS", 60_000, 100),
    streams: {
      batch: int(env, "STREAM_BATCH", 100, 1),
      concurrency: int(env, "STREAM_CONCURRENCY", 2, 1),
      blockMs: int(env, "STREAM_BLOCK_MS", 5000, 10),
      claimIdleMs: int(env, "STREAM_CLAIM_IDLE_MS", 30_000, 50),
      maxDeliveries: int(env, "STREAM_MAX_DELIVERIES", 8, 1),
    },
    sessionsReaperMs: int(env, "SESSIONS_REAPER_MS", 60_000, 50),
    readyServices: env.READY_SERVICES?.trim() ? env.READY_SERVICES.split(",").map((x) => x.trim()).filter(Boolean) : null,
    oauthTest: { allowLoopback, caPem: caFile ? readFileSync(caFile, "utf8") : null },
    audit: {
      retentionMaxDays: int(env, "AUDIT_RETENTION_DAYS", 365, 1),
      claimIdleMs: int(env, "AUDIT_CLAIM_IDLE_SECS", 30, 1) * 1000,
      maxDeliveries: int(env, "AUDIT_MAX_DELIVERIES", 8, 1),
      retentionSweepMs: int(env, "AUDIT_RETENTION_SWEEP_MS", 3600_000, 100),
      sseHeartbeatMs: int(env, "SSE_HEARTBEAT_MS", 15_000, 50),
      sseClientBufferBytes: int(env, "SSE_CLIENT_BUFFER_BYTES", 1024 * 1024, 1024),
    },
    generatedKeys: generated,
  };
}

let cached: (Config & { generatedKeys: string[] }) | null = null;

/** The process-wide configuration. Launchers pass generated dev secrets down through the environment. */
export function config(): Config & { generatedKeys: string[] } {
  if (!cached) cached = loadConfig();
  return cached;
}

/** The Redis stream a logical name (`caracal.zone.events`) is written to and read from: STREAM_PREFIX + name. */
export const streamName = (logical: string): string => config().streamPrefix + logical;

/** Tests build brokers with their own settings; this drops the memoised value. */
export function resetConfig(): void {
  cached = null;
}
