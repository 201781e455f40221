// Request and response schemas of the application routes: the service validates with these rules and /docs shows them.
import { J, type JsonSchema, type ServiceApi } from "../../shared/api-doc";
import { LIMITS, nameRule, oneOf, optional, strictBody, stringList, text } from "../../shared/validation";
import { publicApplicationSchema, toPublicApplication, type ApplicationDoc } from "./models/application.model";

const appName = nameRule();
/** Trait rules proper (1..128 characters, a pattern, at most 32) answer 403 as the reference does; these caps are only the outer bound. */
const traitList = optional(stringList(LIMITS.traits, LIMITS.trait));

export const APPLICATION_BODIES = {
  create: strictBody({ name: appName, registration_method: oneOf(["managed"]), traits: traitList }),
  registerDcr: strictBody({ name: appName, expires_in: optional({ type: "number", integer: true, min: 1, max: 3600 }) }),
  update: strictBody({ name: optional(appName), client_secret: optional(text(1, LIMITS.secret)), traits: traitList }),
};

const appProps = publicApplicationSchema.properties as Record<string, JsonSchema>;
const { traits: _traits, ...shownOnCreate } = appProps;
void _traits;
const createdApplication = J.obj({ ...shownOnCreate, client_secret: { ...J.string(), description: "Shown once, here only" } });

const exampleApp: ApplicationDoc = {
  _id: "0197c3a3-0a4b-7c1d-8e2f-3a4b5c6d7e8f",
  zone_id: "0197c3a2-6f1e-7a3c-9b2d-4e5f60718293",
  name: "Runner",
  registration_method: "managed",
  traits: ["team:payments"],
  expires_at: null,
  created_at: new Date("2026-07-02T10:01:00.000Z"),
  archived_at: null, archived: false,
  secret_hash: null,
};
const exampleSecret = "cs_3q2-7wEXAMPLEonlyEXAMPLEonlyEXAMPLEonly0";
const traitErrors = ["trait_count_exceeded", "trait_invalid", "trait_duplicate", "trait_forbidden"];

export const APPLICATIONS_API: ServiceApi = {
  list: { status: 200, list: true, response: publicApplicationSchema, example: { response: { items: [toPublicApplication(exampleApp, true)], next_cursor: null } } },
  get: { status: 200, response: publicApplicationSchema, errors: { 404: ["application_not_found"] }, example: { response: toPublicApplication(exampleApp, true) } },
  create: {
    body: APPLICATION_BODIES.create,
    status: 201,
    response: createdApplication,
    errors: { 403: traitErrors, 404: ["zone_not_found"], 409: ["reserved_namespace"] },
    example: { body: { name: "Runner", registration_method: "managed", traits: ["team:payments"] }, response: { ...toPublicApplication(exampleApp, false), client_secret: exampleSecret } },
  },
  registerDcr: {
    body: APPLICATION_BODIES.registerDcr,
    status: 201,
    response: createdApplication,
    errors: { 403: ["dcr_disabled"], 404: ["zone_not_found"], 409: ["reserved_namespace"], 429: ["dcr_rate_limit_exceeded", "dcr_limit_exceeded"] },
    description: "Only while the zone has `dcr_enabled`; the application expires after `expires_in` seconds (default 3600).",
    example: {
      body: { name: "Short-lived agent", expires_in: 600 },
      response: { ...toPublicApplication({ ...exampleApp, name: "Short-lived agent", registration_method: "dcr", expires_at: new Date("2026-07-02T10:11:00.000Z") }, false), client_secret: exampleSecret },
    },
  },
  update: {
    body: APPLICATION_BODIES.update,
    status: 200,
    response: J.obj({ id: J.id, name: J.string() }),
    errors: { 400: ["client_secret_not_configured", "no_fields"], 403: traitErrors, 404: ["application_not_found"], 409: ["reserved_namespace"] },
    description: "A `client_secret` given here replaces the stored one (the response does not echo it).",
    example: { body: { name: "Runner (eu)" }, response: { id: exampleApp._id, name: "Runner (eu)" } },
  },
  rotateSecret: {
    status: 200,
    response: J.obj({ id: J.id, client_secret: { ...J.string(), description: "Shown once, here only; the old secret stops working at once" } }),
    errors: { 404: ["application_not_found"] },
    description: "No request body: the new secret is generated.",
    example: { response: { id: exampleApp._id, client_secret: exampleSecret } },
  },
  remove: { status: 204, errors: { 404: ["application_not_found"] } },
};
