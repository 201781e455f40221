// Request and response schemas of the admin-token routes: the service validates with these rules and /docs shows them.
import { J, type JsonSchema, type ServiceApi } from "../shared/api-doc";
import { LIMITS, nameRule, oneOf, optional, strictBody, text } from "../shared/validation";
import { publicTokenSchema, toPublicToken, type TokenDoc } from "./admin-token.model";

export const ADMIN_TOKEN_BODIES = {
  create: strictBody({
    name: nameRule(120),
    scope: oneOf(["global", "zone"]),
    zone_id: optional(text(1, LIMITS.id, { description: "Required for scope zone, refused for scope global" })),
    capability: optional(oneOf(["read", "write"], { description: "Default write" })),
  }),
};

const exampleToken: TokenDoc = {
  _id: "0197c3a9-6071-7283-9e95-af0f1a2b3c4d", name: "ci", scope: "global", capability: "write", zone_id: null, created_by: "admin:0197c3a0-0000-7000-8000-000000000001",
  created_at: new Date("2026-07-02T09:00:00.000Z"), last_used_at: null, revoked_at: null, digest: "", hash: "",
};
const { last_used_at: _l, revoked_at: _r, ...shown } = publicTokenSchema.properties as Record<string, JsonSchema>;
void _l;
void _r;
const managerErrors = ["admin_token_management_requires_global", "admin_token_management_forbidden_for_derived_token"];

export const ADMIN_TOKENS_API: ServiceApi = {
  list: {
    status: 200,
    list: true,
    response: publicTokenSchema,
    errors: { 403: managerErrors },
    description: "Every token, revoked ones included. Global, non-derived tokens only.",
    example: { response: { items: [toPublicToken(exampleToken)], next_cursor: null } },
  },
  create: {
    body: ADMIN_TOKEN_BODIES.create,
    status: 201,
    response: J.obj({ ...shown, token: { ...J.string(), description: "Shown once, here only" } }),
    errors: { 400: ["zone_id_required", "zone_id_not_allowed_for_global"], 403: managerErrors, 404: ["zone_not_found"] },
    example: {
      body: { name: "ci", scope: "global" },
      response: (({ last_used_at: _a, revoked_at: _b, ...rest }) => ({ ...rest, token: "cat_EXAMPLEonlyEXAMPLEonlyEXAMPLEonlyEXAMPLEonl" }))(toPublicToken(exampleToken)),
    },
  },
  revoke: { status: 204, errors: { 403: managerErrors, 404: ["admin_token_not_found"] }, description: "The token stops working on every gateway at once." },
};
