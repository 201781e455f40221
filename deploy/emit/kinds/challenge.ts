// `emit challenge`: one step-up challenge created, or an existing one consumed or satisfied by the runtime.
import { newId } from "../../../shared/ids";
import { CHALLENGES_STREAM } from "../../../services/sessions/entries";
import { challengeCreated, challengeLater } from "../builders";
import type { EmitKind } from "../kind";

export const challengeKind: EmitKind = {
  name: "challenge",
  summary: "one step-up challenge on caracal.stepup.challenges: created (default), consumed or satisfied",
  usage: "--zone Z [--event created|consumed|satisfied] [--id ID] [--session S] [--type human_approval|mfa|software_attestation] [--expires-in SECONDS] [--approver A]",
  async run(args, emitter) {
    const zone = args.str("zone");
    const event = args.oneOf("event", ["created", "consumed", "satisfied"] as const, "created");
    if (event === "created") {
      const id = args.str("id", newId());
      const expiresIn = args.optional("expires-in");
      const fields = challengeCreated({
        zone,
        id,
        session: args.str("session", ""),
        type: args.oneOf("type", ["human_approval", "mfa", "software_attestation"] as const, "human_approval"),
        expiresInSec: expiresIn === undefined ? undefined : args.int("expires-in", 0, -86400, 86400),
      });
      const [entryId] = await emitter.publish(CHALLENGES_STREAM, [fields]);
      return { stream: emitter.stream(CHALLENGES_STREAM), entry_ids: [entryId], challenge_id: id };
    }
    const id = args.str("id");
    const [entryId] = await emitter.publish(CHALLENGES_STREAM, [challengeLater({ zone, id, event, approver: args.optional("approver") })]);
    return { stream: emitter.stream(CHALLENGES_STREAM), entry_ids: [entryId], challenge_id: id };
  },
};
