// Step-up challenges through the API: list, get, and satisfy with the reference's rules in their order.
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { OBJECT_LIMITS, parseListQuery, pageOf } from "../../shared/pagination";
import { anyQuery, pathParams } from "../../shared/validation";
import { conflict, notFound } from "../../shared/errors";
import { pushEvents, type OutboxEntry } from "../../shared/outbox/entry";
import type { ApiContext, RouteParams } from "../../shared/meta";
import type { MongoMethods } from "../../shared/mixins/mongo.mixin";
import type { OutboxMethods } from "../../shared/mixins/outbox.mixin";
import { CHALLENGES_STREAM } from "./entries";
import { CHALLENGE_PROJECTION, toPublicChallenge, type ChallengeDoc } from "./models/challenge.model";
import type { SessionDoc } from "./models/session.model";

type Host = MongoMethods & OutboxMethods & { models: { Challenge: Model<ChallengeDoc>; Session: Model<SessionDoc> } };

export const challengeActions: NonNullable<ServiceSchema<any, Host>["actions"]> = {
  listChallenges: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const q = parseListQuery(ctx.params.query, OBJECT_LIMITS);
      const page = await this.listRows<ChallengeDoc>("Challenge", ctx.params.params.zoneId, q, { projection: CHALLENGE_PROJECTION, tsField: "created_at" });
      return pageOf(page.rows, q, toPublicChallenge, {}, "created_at", page.resumeAfter);
    },
  },

  getChallenge: {
    params: { params: pathParams("zoneId", "id") },
    async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
      const { zoneId, id } = ctx.params.params;
      const c = await this.models.Challenge.findById(id, CHALLENGE_PROJECTION).lean<ChallengeDoc>();
      if (!c || c.zone_id !== zoneId) throw notFound("challenge_not_found", "no such step-up challenge in this zone");
      return toPublicChallenge(c);
    },
  },

  /**
   * Satisfiable only when, in this order: the challenge is in the zone, not yet satisfied, not expired, has a
   * session that exists (any status, same zone), and that session's subject is not the approver. Any failure,
   * an unknown id included, is the same 409. The approval and the entry the runtime waits for on
   * caracal.stepup.challenges are one document write.
   */
  satisfyChallenge: {
    params: { params: pathParams("zoneId", "id"), body: { type: "any", optional: true } },
    async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
      const { zoneId, id } = ctx.params.params;
      const approver = `admin:${ctx.meta.actor?.id ?? "unknown"}`;
      const C = this.models.Challenge;
      let events: OutboxEntry[] = [];
      const answer = await this.locked(C, id, async () => {
        const c = await C.findById(id, CHALLENGE_PROJECTION).lean<ChallengeDoc>();
        const now = new Date();
        if (!c || c.zone_id !== zoneId) return null;
        if (c.satisfied_at) return null;
        if (new Date(c.expires_at).getTime() <= now.getTime()) return null;
        if (!c.session_id) return null;
        const session = await this.models.Session.findById(c.session_id, { subject_id: 1, zone_id: 1 }).lean();
        if (!session || session.zone_id !== zoneId) return null;
        if (session.subject_id !== null && session.subject_id === approver) return null;
        events = [
          // The relay writes it to STREAM_PREFIX + the name, as every outbox entry.
          this.event(ctx, CHALLENGES_STREAM, {
            event: "satisfied",
            zone_id: zoneId,
            challenge_id: id,
            session_id: c.session_id,
            challenge_type: c.challenge_type,
            approver_subject_id: approver,
            satisfied_at: now.toISOString(),
          }),
          this.zoneEvent(ctx, zoneId, "step_up_challenge", id, "updated", { changed_fields: "approver_subject_id,satisfied_at" }),
        ];
        await C.updateOne({ _id: id }, pushEvents({ $set: { satisfied_at: now, approver_subject_id: approver } }, events));
        return { id, satisfied_at: now.toISOString(), approver_subject_id: approver };
      });
      if (!answer) throw conflict("challenge_not_satisfiable", "the challenge is unknown, already satisfied, expired, has no session, or would be self-approved");
      await this.outboxKick("Challenge", id, events);
      return answer;
    },
  },
};
