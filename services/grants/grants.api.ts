// Request and response schemas of the grant routes: the service validates with these rules and /docs shows them.
import { J, type ServiceApi } from "../../shared/api-doc";
import { idRef, optional, strictBody, text } from "../../shared/validation";
import { grantRowSchema, publicGrantSchema, publicProviderGrantSchema, toPublicGrant, toPublicProviderGrant, type GrantDoc, type ProviderGrantDoc } from "./models/grant.model";
import { MAX_SCOPE_LENGTH, MAX_SCOPES, MAX_SUBJECT_LENGTH, MAX_TOKEN_LENGTH, SCOPE_PATTERN, UTC_DATETIME } from "./grant-rules";

const subject = text(1, MAX_SUBJECT_LENGTH, { description: "The subject (user) the grant is for" });
const scope = text(1, MAX_SCOPE_LENGTH, { pattern: SCOPE_PATTERN, messages: { stringPattern: "A scope is lower-case letters, digits and : _ . / -" } });
const scopes = { type: "array", min: 1, max: MAX_SCOPES, items: scope, description: "Each must be one of the resource's scopes" };
const token = text(1, MAX_TOKEN_LENGTH);

export const GRANT_BODIES = {
  create: strictBody({ application_id: idRef, user_id: subject, resource_id: idRef, scopes }),
  createProviderGrant: strictBody({
    user_id: subject,
    resource_id: idRef,
    provider_id: idRef,
    scopes,
    access_token: { ...token, description: "Sealed at rest, never shown again" },
    refresh_token: optional({ ...token, description: "Sealed at rest, never shown again" }),
    expires_at: optional(text(1, 40, { pattern: UTC_DATETIME, messages: { stringPattern: "expires_at must be an ISO-8601 date-time in UTC (…Z)" }, description: "When the access token expires (UTC, Z form)" })),
  }),
  authorize: strictBody({ user_id: subject, resource_id: idRef, provider_id: idRef, scopes }),
  revokeProviderGrant: strictBody({ user_id: subject, resource_id: idRef, provider_id: idRef }),
};

const zoneId = "0197c3a2-6f1e-7a3c-9b2d-4e5f60718293";
const at = new Date("2026-07-02T10:05:00.000Z");
const exampleGrant: GrantDoc = {
  _id: "0197c3a6-3d4e-7f50-8a62-7c8d9e0f1a2b",
  zone_id: zoneId,
  application_id: "0197c3a3-0a4b-7c1d-8e2f-3a4b5c6d7e8f",
  user_id: "user-42",
  resource_id: "0197c3a5-2c3d-7e4f-9a51-6b7c8d9e0f1a",
  scopes: ["payments:read"],
  status: "active",
  created_at: at,
  revoked_at: null,
};
const exampleProviderGrant: ProviderGrantDoc = {
  _id: "0197c3a7-4e5f-7061-9b73-8d9e0f1a2b3c",
  zone_id: zoneId,
  user_id: "user-42",
  resource_id: exampleGrant.resource_id,
  provider_id: "0197c3a4-1b2c-7d3e-8f40-5a6b7c8d9e0f",
  active_key: "",
  scopes: ["payments:read"],
  tokens_sealed: { nonce: "", ciphertext: "" },
  expires_at: new Date("2026-07-02T11:05:00.000Z"),
  status: "active",
  refresh_token_version: 0,
  refreshed_at: null,
  created_at: at,
  updated_at: at,
  revoked_at: null,
};
const exampleRow = {
  ...toPublicGrant(exampleGrant),
  provider_id: exampleProviderGrant.provider_id,
  application_name: "Runner",
  resource_name: "Payments",
  provider_name: "Payments OAuth",
  provider_kind: "oauth2_authorization_code",
};

const target = { 400: ["provider_grant_unsupported", "provider_resource_mismatch"], 403: ["grant_scopes_exceed_resource"] };
const filter = (description: string, max = 128) => ({ schema: J.string({ minLength: 1, maxLength: max }), description });

export const GRANTS_API: ServiceApi = {
  list: {
    status: 200,
    list: true,
    response: grantRowSchema,
    query: {
      application_id: filter("Only grants of this application"),
      user_id: filter("Only grants of this subject", MAX_SUBJECT_LENGTH),
      subject_id: filter("Alias of user_id (user_id wins)", MAX_SUBJECT_LENGTH),
      resource_id: filter("Only grants on this resource"),
      provider_id: filter("Only grants on resources whose credential provider is this one"),
      status: filter("Only grants in this status (active, revoked, expired)", 200),
      scopes: { schema: J.string({ minLength: 1 }), description: `Comma list of scopes (lower-case, at most ${MAX_SCOPES}); a grant must hold all of them` },
    },
    description: "Revoked grants are listed too. The names come from the applications and providers services (one call each per page); what no longer exists is null.",
    example: { response: { items: [exampleRow], next_cursor: null } },
  },
  get: { status: 200, response: publicGrantSchema, errors: { 404: ["grant_not_found"] }, example: { response: toPublicGrant(exampleGrant) } },
  create: {
    body: GRANT_BODIES.create,
    status: 201,
    response: publicGrantSchema,
    errors: { 403: ["grant_scopes_exceed_resource"], 404: ["zone_not_found", "application_not_found", "resource_not_found"] },
    description: "Checks in this order: zone, body, application (active, unexpired), resource, scopes. Repeated creates make separate grants.",
    example: { body: { application_id: exampleGrant.application_id, user_id: "user-42", resource_id: exampleGrant.resource_id, scopes: ["payments:read"] }, response: toPublicGrant(exampleGrant) },
  },
  revoke: {
    status: 204,
    errors: { 404: ["grant_not_found"] },
    description: "Sets the grant revoked (again 204 when it already is) and announces it on caracal.zone.events (entity_type grant, action deleted, subject_id, grant_id); the sessions service then revokes the subject's active sessions in the zone.",
  },
  createProviderGrant: {
    body: GRANT_BODIES.createProviderGrant,
    status: 201,
    response: publicProviderGrantSchema,
    errors: { ...target, 404: ["zone_not_found", "provider_not_found", "resource_not_found"], 409: ["provider_grant_conflict"] },
    description: "Imports upstream tokens for an oauth2_authorization_code provider. There is one active grant per (user, resource, provider): a second import replaces its scopes, tokens and expiry and keeps its id.",
    example: {
      body: { user_id: "user-42", resource_id: exampleGrant.resource_id, provider_id: exampleProviderGrant.provider_id, scopes: ["payments:read"], access_token: "example-access-token", expires_at: "2026-07-02T11:05:00Z" },
      response: toPublicProviderGrant(exampleProviderGrant),
    },
  },
  authorize: {
    body: GRANT_BODIES.authorize,
    status: 200,
    response: J.obj({
      authorization_url: { ...J.string(), description: "Send the user's browser here" },
      state: J.string({ minLength: 43, maxLength: 43 }),
      expires_at: { ...J.timestamp, description: "The state is good for 600 s, once" },
    }),
    errors: { 400: [...target[400], "invalid_provider_config", "provider_authorization_endpoint_invalid"], 403: target[403], 404: ["zone_not_found", "provider_not_found", "resource_not_found"] },
    description: "Starts the authorization-code flow with PKCE (S256). The IdP is asked for the provider config's scopes; the Caracal scopes of the body become the grant's.",
    example: {
      body: { user_id: "user-42", resource_id: exampleGrant.resource_id, provider_id: exampleProviderGrant.provider_id, scopes: ["payments:read"] },
      response: {
        authorization_url: "https://idp.example/authorize?response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=Vx3kR0mEXAMPLEexampleEXAMPLEexampleEXAMPLE0&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        state: "Vx3kR0mEXAMPLEexampleEXAMPLEexampleEXAMPLE0",
        expires_at: "2026-07-02T10:15:00.000Z",
      },
    },
  },
  callback: {
    status: 201,
    response: publicProviderGrantSchema,
    query: {
      state: { schema: J.string({ minLength: 32, maxLength: 256 }), description: "The state authorize answered (single use)" },
      code: { schema: J.string(), description: "The authorization code" },
      error: { schema: J.string(), description: "The IdP's refusal" },
      error_description: { schema: J.string(), description: "The IdP's explanation" },
    },
    errors: {
      400: ["invalid_oauth_callback", "oauth_state_expired", "oauth_state_invalid", "oauth_state_mismatch", "provider_oauth_denied", "authorization_code_required", ...target[400], "invalid_provider_config", "provider_token_endpoint_not_allowed"],
      403: target[403],
      404: ["zone_not_found", "provider_not_found", "resource_not_found"],
      502: ["provider_token_exchange_failed", "provider_token_response_invalid"],
    },
    description: "Where the IdP sends the browser back: no admin token. Exchanges the code and stores the provider grant. A browser (Accept with text/html and not application/json) gets a small HTML page with the same status.",
    example: { response: toPublicProviderGrant(exampleProviderGrant) },
  },
  revokeProviderGrant: {
    body: GRANT_BODIES.revokeProviderGrant,
    status: 200,
    response: publicProviderGrantSchema,
    errors: { 404: ["provider_grant_not_found"] },
    example: { body: { user_id: "user-42", resource_id: exampleGrant.resource_id, provider_id: exampleProviderGrant.provider_id }, response: toPublicProviderGrant({ ...exampleProviderGrant, status: "revoked" }) },
  },
};
