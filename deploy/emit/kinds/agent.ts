// `emit agent`: one agent-session event (spawn, suspend, resume, terminate).
import { newId } from "../../../shared/ids";
import { AGENTS_STREAM } from "../../../services/sessions/entries";
import { agentSpawn, agentTransition } from "../builders";
import type { EmitKind } from "../kind";

export const agentKind: EmitKind = {
  name: "agent",
  summary: "one agent-session event on caracal.agents.lifecycle: spawn, suspend, resume or terminate",
  usage: "--zone Z --event spawn|suspend|resume|terminate [--id ID] [--application A] [--parent P] [--subject-session S] [--lifecycle task|service] [--labels a,b] [--ttl SECONDS] [--reason R]",
  async run(args, emitter) {
    const zone = args.str("zone");
    const event = args.oneOf("event", ["spawn", "suspend", "resume", "terminate"] as const);
    const parent = args.optional("parent") ?? null;
    if (event === "spawn") {
      const id = args.str("id", newId());
      const fields = agentSpawn({
        zone,
        id,
        application: args.str("application"),
        parent,
        subjectSession: args.optional("subject-session") ?? null,
        lifecycle: args.oneOf("lifecycle", ["task", "service"] as const, "task"),
        labels: args.list("labels"),
        ttlSec: args.int("ttl", 3600, 1, 365 * 86400),
      });
      const [entryId] = await emitter.publish(AGENTS_STREAM, [fields]);
      return { stream: emitter.stream(AGENTS_STREAM), entry_ids: [entryId], agent_session_id: id };
    }
    const id = args.str("id");
    const [entryId] = await emitter.publish(AGENTS_STREAM, [agentTransition({ zone, id, event, parent, reason: args.optional("reason") ?? null })]);
    return { stream: emitter.stream(AGENTS_STREAM), entry_ids: [entryId], agent_session_id: id };
  },
};
