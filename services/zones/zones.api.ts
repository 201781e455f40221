// Request and response schemas of the zone routes: the service validates with these rules and /docs shows them.
import { J, type ServiceApi } from "../../shared/api-doc";
import { nameRule, oneOf, optional, strictBody, LIMITS } from "../../shared/validation";
import { publicZoneSchema, toPublicZone, type ZoneDoc } from "./models/zone.model";
import { SLUG_PATTERN } from "./slug";

const zoneName = nameRule(120, { trim: true });
const zoneSlug = { type: "string", min: 1, max: LIMITS.name, pattern: SLUG_PATTERN, messages: { stringPattern: "slug must match ^[a-z0-9-]+$" } };

export const ZONE_BODIES = {
  create: strictBody({ name: zoneName, slug: optional(zoneSlug), dcr_enabled: optional({ type: "boolean" }) }),
  update: strictBody({
    name: optional(zoneName),
    slug: optional(zoneSlug),
    dcr_enabled: optional({ type: "boolean" }),
    dcr_shutdown: optional(oneOf(["keep_live", "revoke_live"])),
    operator_coauthor_badge: optional({ type: "boolean" }),
  }),
};

const exampleZone: ZoneDoc = {
  _id: "0197c3a2-6f1e-7a3c-9b2d-4e5f60718293",
  name: "Payments",
  slug: "payments",
  dcr_enabled: false,
  operator_coauthor_badge: true,
  reserved: false,
  created_at: new Date("2026-07-02T10:00:00.123Z"),
  updated_at: new Date("2026-07-02T10:00:00.123Z"),
  archived_at: null,
  archived: false,
};

export const ZONES_API: ServiceApi = {
  list: { status: 200, list: true, response: publicZoneSchema, example: { response: { items: [toPublicZone(exampleZone)], next_cursor: null } } },
  create: {
    body: ZONE_BODIES.create,
    status: 201,
    response: publicZoneSchema,
    errors: { 409: ["reserved_namespace", "zone_slug_conflict"] },
    description: "Without `slug`, one is generated from the name (`my-zone`, then `my-zone-2`, …).",
    example: { body: { name: "Payments" }, response: toPublicZone(exampleZone) },
  },
  get: { status: 200, response: publicZoneSchema, errors: { 404: ["zone_not_found"] }, example: { response: toPublicZone(exampleZone) } },
  update: {
    body: ZONE_BODIES.update,
    status: 200,
    response: publicZoneSchema,
    errors: { 400: ["dcr_shutdown_not_applicable", "no_fields"], 404: ["zone_not_found"], 409: ["reserved_namespace", "zone_slug_conflict", "dcr_shutdown_required"] },
    description: "Turning DCR off while live DCR applications exist needs `dcr_shutdown`: `keep_live` lets them run out, `revoke_live` archives them now.",
    example: { body: { dcr_enabled: true }, response: { ...toPublicZone(exampleZone), dcr_enabled: true } },
  },
  remove: { status: 204, errors: { 404: ["zone_not_found"] } },
  dcrStatus: {
    status: 200,
    response: J.obj({ id: J.id, dcr_enabled: J.boolean, live_dcr_applications: J.integer({ minimum: 0 }) }),
    errors: { 404: ["zone_not_found"] },
    example: { response: { id: exampleZone._id, dcr_enabled: true, live_dcr_applications: 2 } },
  },
};
