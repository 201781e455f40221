// Internal action the grants service calls once per list page: application names by id.
import type { Model } from "mongoose";
import type { Context } from "moleculer";
import type { ApplicationDoc } from "./models/application.model";

/** Ids per call: a page holds at most 500 rows. */
const MAX_IDS = 500;

export const nameActions = {
  /** `{names: {id: name}}` for the applications of the zone among `ids`, archived ones included. Point reads by `_id`. */
  namesByIds: {
    visibility: "public",
    params: { zone_id: "string", ids: { type: "array", items: "string", max: MAX_IDS } },
    async handler(this: { apps(): Model<ApplicationDoc> }, ctx: Context<{ zone_id: string; ids: string[] }>) {
      const rows = await Promise.all([...new Set(ctx.params.ids)].map((id) => this.apps().findById(id, { name: 1, zone_id: 1 }).lean<ApplicationDoc>()));
      const names: Record<string, string> = {};
      for (const a of rows) if (a && a.zone_id === ctx.params.zone_id) names[a._id] = a.name;
      return { names };
    },
  },
};
