// `emit audit`: signed decision events on caracal.audit.events (the runtime's format, reference-ops §1.1),
// at --rate per second until --count are out (bounded; stops by itself). Register it in index.ts KINDS.
import { config } from "../../../shared/config";
import { AUDIT_STREAM, auditEntry, decisionEvent } from "../audit";
import type { EmitKind } from "../kind";

const TICK_MS = 50;

export const auditKind: EmitKind = {
  name: "audit",
  summary: "decision events on caracal.audit.events (`sig` = HMAC of `data` under AUDIT_HMAC_KEY), at --rate/s until --count",
  usage: "--zone Z[,Z2…] [--count 1] [--rate 1000] [--decision allow|deny|mixed] [--request-id R] [--spread-hours H] [--wrong-sig]",
  async run(args, emitter) {
    const zones = args.list("zone");
    if (!zones.length) throw new Error("--zone is required");
    const count = args.int("count", 1, 1, 1_000_000);
    const rate = args.int("rate", 1000, 1, 100_000);
    const decision = args.oneOf("decision", ["allow", "deny", "mixed"] as const, "mixed");
    const requestId = args.optional("request-id");
    // Back-dates events over a window ending now (seeding history); 0 = they happen now.
    const spreadMs = args.int("spread-hours", 0, 0, 24 * 3650) * 3600_000;
    const key = args.flag("wrong-sig") ? Buffer.alloc(32, 0xee) : config().auditHmacKey;
    const started = Date.now();
    let sent = 0;
    const ids: string[] = [];
    while (sent < count) {
      const due = Math.min(count, Math.floor(((Date.now() - started) / 1000) * rate) + 1) - sent;
      if (due <= 0) {
        await new Promise((r) => setTimeout(r, TICK_MS));
        continue;
      }
      const batch = Array.from({ length: Math.min(due, 1000) }, (_, k) => {
        const i = sent + k;
        const event = decisionEvent(
          { zoneId: zones[i % zones.length]!, decision: decision === "mixed" ? undefined : decision, requestId, at: spreadMs ? new Date(Date.now() - Math.floor(Math.random() * spreadMs)) : undefined },
          i,
        );
        if (ids.length < 10) ids.push(String(event.id));
        return auditEntry(event, key);
      });
      await emitter.publish(AUDIT_STREAM, batch);
      sent += batch.length;
    }
    const seconds = (Date.now() - started) / 1000;
    return { stream: emitter.stream(AUDIT_STREAM), published: sent, seconds, rate: Math.round(sent / Math.max(seconds, 0.001)), first_event_ids: ids, zones };
  },
};
