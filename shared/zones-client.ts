// How other services ask the zones service about a zone (they never read its collection).
import type { Context } from "moleculer";
import { notFound } from "./errors";

export interface ResolvedZone {
  id: string;
  name: string;
  slug: string;
  dcr_enabled: boolean;
  reserved: boolean;
  archived: boolean;
}

/** The zone, or 404 `zone_not_found` when it does not exist or is archived (decision 4). */
export async function activeZoneOf(ctx: Context<any, any>, zoneId: string): Promise<ResolvedZone> {
  const zone = await ctx.call<ResolvedZone | null, { id: string }>("zones.resolve", { id: zoneId });
  if (!zone || zone.archived) throw notFound("zone_not_found", "zone not found");
  return zone;
}
