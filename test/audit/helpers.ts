// Shared by the audit suites: publishing decision events and waiting until the audit service stored them.
import Redis from "ioredis";
import { ServiceBroker } from "moleculer";
import { auditEntry, decisionEvent, publishAudit, AUDIT_STREAM, type DecisionEventInput } from "../../deploy/emit/audit";
import { TEST_STREAMS_KEY, eventually, type Cluster } from "../helpers/cluster";

export const AUDIT_KEY = Buffer.from(TEST_STREAMS_KEY, "hex");

export function testRedis(): Redis {
  const r = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  r.on("error", () => undefined);
  return r;
}

/** Publishes signed events on the cluster's decision stream and returns them (as sent). */
export async function publishDecisions(c: Cluster, redis: Redis, inputs: DecisionEventInput[]): Promise<Record<string, any>[]> {
  const events = inputs.map((i) => decisionEvent(i));
  await publishAudit(redis, events.map((e) => auditEntry(e, AUDIT_KEY)), c.stream(AUDIT_STREAM));
  return events;
}

/** Every row of `GET …/audit?<query>`, following cursors (a page may stop short on its time budget). */
export async function auditRows(c: Cluster, zoneId: string, query = "limit=1000"): Promise<any[] | undefined> {
  const rows: any[] = [];
  let cursor: string | null = null;
  do {
    const r: { status: number; body: any } = await c.http().get(`/v1/zones/${zoneId}/audit?${query}${cursor ? `&cursor=${cursor}` : ""}`).set(c.auth());
    if (r.status !== 200) return undefined;
    rows.push(...r.body.items);
    cursor = r.body.next_cursor;
  } while (cursor);
  return rows;
}

/** Waits until `GET …/audit?<query>` lists `n` rows. */
export async function waitForAudit(c: Cluster, zoneId: string, n: number, query = "limit=1000"): Promise<any[]> {
  return eventually(async () => {
    const rows = await auditRows(c, zoneId, query);
    return rows && rows.length >= n ? rows : undefined;
  }, 15_000, 100);
}

export const zoneId = (prefix = "z") => `${prefix}-${Math.random().toString(36).slice(2, 10)}`;

/** A fresh audit process in place of one a test stopped (the cluster's restart expects a running one). */
export async function replaceAudit(c: Cluster, nodeID = `audit-back-${c.namespace}-${Date.now()}`): Promise<ServiceBroker> {
  const { brokerOptions } = await import("../../shared/broker");
  const { PROCESSES } = await import("../../deploy/local/services");
  const fresh = new ServiceBroker(brokerOptions({ nodeID }));
  for (const schema of await PROCESSES.audit!()) fresh.createService(schema);
  await fresh.start();
  c.brokers.audit = fresh;
  await c.brokers.gateway!.waitForServices(["audit"], 20_000);
  return fresh;
}
