// `emit session`: one subject session created, or an existing one revoked or expired.
import { newId } from "../../../shared/ids";
import { SESSIONS_STREAM } from "../../../services/sessions/entries";
import { sessionCreated, sessionEnded } from "../builders";
import type { EmitKind } from "../kind";

export const sessionKind: EmitKind = {
  name: "session",
  summary: "one subject session on caracal.sessions.lifecycle: created (default), revoked or expired",
  usage: "--zone Z [--event created|revoked|expired] [--id ID] [--type user|application] [--subject S] [--parent P] [--ttl SECONDS] [--reason R]",
  async run(args, emitter) {
    const zone = args.str("zone");
    const event = args.oneOf("event", ["created", "revoked", "expired"] as const, "created");
    if (event === "created") {
      const id = args.str("id", newId());
      const fields = sessionCreated({ zone, id, type: args.oneOf("type", ["user", "application"] as const, "user"), subject: args.optional("subject") ?? null, parent: args.optional("parent") ?? null, ttlSec: args.int("ttl", 3600, -86400, 365 * 86400) });
      const [entryId] = await emitter.publish(SESSIONS_STREAM, [fields]);
      return { stream: emitter.stream(SESSIONS_STREAM), entry_ids: [entryId], session_id: id };
    }
    const id = args.str("id");
    const [entryId] = await emitter.publish(SESSIONS_STREAM, [sessionEnded({ zone, id, event, reason: args.optional("reason") ?? null })]);
    return { stream: emitter.stream(SESSIONS_STREAM), entry_ids: [entryId], session_id: id };
  },
};
