// Policies: Rego data documents and their versions, policy sets with manifests, activation, and decisions
// evaluated by the real Open Policy Agent (compiled to WebAssembly once per policy-set version).
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MongoMixin, type MongoMethods } from "../../shared/mixins/mongo.mixin";
import { OutboxMixin, type OutboxMethods } from "../../shared/mixins/outbox.mixin";
import { pushEvents, withNewEvents, type OutboxEntry } from "../../shared/outbox/entry";
import { AppError, conflict, invalid, notFound } from "../../shared/errors";
import { activeZoneOf } from "../../shared/zones-client";
import { newId } from "../../shared/ids";
import { config } from "../../shared/config";
import { pathParams, anyQuery, checkBody } from "../../shared/validation";
import { parseListQuery, pageOf } from "../../shared/pagination";
import { assertNotReserved, RESERVED_PREFIXES } from "../../shared/reserved";
import { created, isDuplicateKey, noContent, type ApiContext, type RouteParams } from "../../shared/meta";
import { policySchema, policyVersionSchema, toPublicPolicy, toPublicPolicyVersion, versionSummary, type PolicyDoc, type PolicyVersionDoc } from "./models/policy.model";
import { policySetSchema, policySetVersionSchema, toPublicPolicySet, toPublicSetVersion, activeSlot, idleSlot, type PolicySetDoc, type PolicySetVersionDoc } from "./models/policy-set.model";
import { checkRego, isSupportedSchemaVersion, type Preview, DEFAULT_SCHEMA_VERSION, INPUT_SCHEMA_VERSION, OUTPUT_CONTRACT } from "./rego-check";
import { manifestContractFailure, manifestSha256, normalizeManifest, contentSha256, inputWarnings, type ManifestEntry, type ManifestMember } from "./manifest";
import { Opa, type OpaError } from "./opa";
import { Evaluator } from "./evaluator";
import { POLICY_TEMPLATES } from "./templates";
import { ZoneCounters } from "../../shared/zone-counters";
import { redisClient } from "../../shared/redis";
import { POLICY_BODIES } from "./policies.api";
import { POLICY_INVALIDATE_STREAM, newestInvalidation, outboxStatus, propagationStatus, type OutboxStatus, type StoredEntry } from "./activation-status";

/** The platform modules bundled with every policy-set version. */
const CONTRACT_MODULES = [
  { name: "decision-contract", content: readFileSync(join(__dirname, "decision-contract.rego"), "utf8") },
  { name: "decision-result", content: readFileSync(join(__dirname, "decision-result.rego"), "utf8") },
];

const EXECUTED_REASON = "OPA evaluated the supplied input against the policy-set version and the platform decision contract without mutating active policy bindings";
const NOT_EXECUTED_REASON = "simulation validates rollout contract and input shape without mutating active policy bindings";

export interface Decision {
  decision: "allow" | "deny";
  evaluation_status: "complete";
  determining_policies: { policy: string }[];
  diagnostics: Record<string, unknown>[];
}

type DecisionOutcome = { ok: true; decision: Decision } | { ok: false; reason: string };

interface Methods extends OutboxMethods, MongoMethods {
  policies(): Model<PolicyDoc>;
  policyVersions(): Model<PolicyVersionDoc>;
  sets(): Model<PolicySetDoc>;
  setVersions(): Model<PolicySetVersionDoc>;
  requireZone(ctx: ApiContext, zoneId: string): Promise<void>;
  assertRego(content: string, schemaVersion: string | undefined, withValidFlag: boolean): Promise<{ schemaVersion: string; preview: Preview }>;
  opaCheck(content: string): Promise<OpaError[]>;
  insertNumbered<T extends { _id: string; version: number }>(parent: Model<any>, parentId: string, live: (p: any) => boolean, child: Model<any>, scope: string, build: (version: number) => T & Record<string, unknown>): Promise<T | null>;
  liveSet(zoneId: string, setId: string): Promise<PolicySetDoc | null>;
  liveSetCached(zoneId: string, setId: string): Promise<PolicySetDoc | null>;
  setChanged(ctx: ApiContext, setId: string): void;
  contractFailure(version: PolicySetVersionDoc): Promise<string | null>;
  liveSetVersion(zoneId: string, setId: string, versionId: string): Promise<PolicySetVersionDoc | null>;
  setVersionById(id: string): Promise<PolicySetVersionDoc | null>;
  compiledBundle(version: PolicySetVersionDoc): Promise<Buffer>;
  buildBundle(manifest: ManifestEntry[]): Promise<{ ok: true; wasm: Buffer } | { ok: false; errors: OpaError[] }>;
  decide(version: PolicySetVersionDoc, input: unknown): Promise<DecisionOutcome>;
  outboxState(set: PolicySetDoc, versionId: string, outboxId: string | undefined): Promise<OutboxStatus>;
  zoneCounts: ZoneCounters;
  warmActiveVersions(): Promise<void>;
}

const zoneParams = pathParams("zoneId");
const idParams = pathParams("zoneId", "id");

/** Active versions compiled and loaded at start (each is an `opa build`, so only the most recent few). */
const WARM_AT_START = 8;

/** How long the decision path trusts a remembered policy set (changes also evict it at once). */
const LIVE_SET_TTL_MS = 1000;

/** A bounded map kept in insertion order; the oldest entry goes when it is full. */
function remember<K, V>(map: Map<K, V>, key: K, value: V, max = 512): V {
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
  return value;
}

const PoliciesService: ServiceSchema<any, Methods> = {
  name: "policies",
  mixins: [
    MongoMixin({
      Policy: { schema: policySchema, collection: "policies" },
      PolicyVersion: { schema: policyVersionSchema, collection: "policy_versions" },
      PolicySet: { schema: policySetSchema, collection: "policy_sets" },
      PolicySetVersion: { schema: policySetVersionSchema, collection: "policy_set_versions" },
    }, { listed: ["Policy", "PolicySet", "PolicySetVersion"] }),
    // Activation status reads a set's published invalidations back from the set.
    OutboxMixin(["Policy", "PolicyVersion", "PolicySet", "PolicySetVersion"], { keepDispatched: { PolicySet: 20 } }),
  ],

  settings: {
    /**
     * Time limit of one decision (`evalTimeoutMs`, default POLICY_EVAL_TIMEOUT_MS, 1000 ms); past it the
     * evaluation fails (never a 5xx from simulate). Booting the evaluator and loading a bundle do not count.
     */
  },

  actions: {
    validate: {
      params: { body: POLICY_BODIES.validate },
      async handler(ctx: ApiContext<RouteParams<{}, { content: string; schema_version?: string }>>) {
        const { schemaVersion, preview } = await this.assertRego(ctx.params.body.content, ctx.params.body.schema_version, true);
        return { valid: true, schema_version: schemaVersion, input_schema_version: INPUT_SCHEMA_VERSION, output_contract: OUTPUT_CONTRACT, preview };
      },
    },

    templates: {
      params: { query: anyQuery },
      handler() {
        return { items: POLICY_TEMPLATES, next_cursor: null };
      },
    },

    list: {
      params: { params: zoneParams, query: anyQuery },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
        const q = parseListQuery(ctx.params.query);
        const page = await this.listRows<PolicyDoc>("Policy", ctx.params.params.zoneId, q, { where: { archived: false }, projection: { _outbox: 0 } });
        return pageOf(page.rows, q, toPublicPolicy, {}, "created_at", page.resumeAfter);
      },
    },

    get: {
      params: { params: idParams },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const policy = await this.policies().findById(id, { _outbox: 0 }).lean<PolicyDoc>();
        if (!policy || policy.zone_id !== zoneId || policy.archived_at) throw notFound("policy_not_found", "policy not found");
        const versions = await Promise.all(policy.version_ids.map((v) => this.policyVersions().findById(v, { _outbox: 0 }).lean<PolicyVersionDoc>()));
        const rows = versions.filter((v): v is PolicyVersionDoc => v !== null).sort((a, b) => b.version - a.version);
        return { ...toPublicPolicy(policy), versions: rows.map(toPublicPolicyVersion) };
      },
    },

    create: {
      params: { params: zoneParams },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }, { name: string; description?: string; owner_type?: string; content: string; schema_version?: string }>>) {
        const { zoneId } = ctx.params.params;
        await this.requireZone(ctx, zoneId);
        checkBody(POLICY_BODIES.create, ctx.params.body ?? {}, "invalid_body");
        const body = ctx.params.body;
        assertNotReserved(ctx.meta.actor, body.name, RESERVED_PREFIXES.policyName);
        const { schemaVersion } = await this.assertRego(body.content, body.schema_version, false);

        const now = new Date();
        const createdBy = ctx.meta.actor?.name ?? "system";
        const policyId = newId();
        const version: PolicyVersionDoc = {
          _id: newId(), policy_id: policyId, zone_id: zoneId, version: 1, content: body.content,
          content_sha256: contentSha256(body.content), schema_version: schemaVersion, created_by: createdBy, created_at: now,
        };
        const policy: PolicyDoc = {
          _id: policyId, zone_id: zoneId, name: body.name, description: body.description ?? null, owner_type: body.owner_type ?? "customer",
          created_by: createdBy, co_authored_by_operator: false, created_at: now, archived_at: null, archived: false, version_ids: [version._id],
        };
        // Version first: until the policy document exists the version is an orphan nobody can see or
        // reference (reads join on the policy), so a crash between the two writes leaves nothing visible.
        await this.policyVersions().create(version);
        const events = [this.zoneEvent(ctx, zoneId, "policy", policyId, "created", { version_id: version._id })];
        try {
          const [listed] = await this.listFields("Policy", zoneId, [now]);
          await this.policies().create({ ...policy, ...listed, ...withNewEvents(events) });
        } catch (err) {
          await this.policyVersions().deleteOne({ _id: version._id }).catch(() => undefined);
          if (isDuplicateKey(err)) throw conflict("policy_name_conflict", "a policy with this name already exists in the zone");
          throw err;
        }
        await this.outboxKick("Policy", policyId, events);
        return created(ctx, `/v1/zones/${zoneId}/policies/${policyId}`, {
          id: policyId, version_id: version._id, zone_id: zoneId, name: policy.name, description: policy.description, version: versionSummary(version),
        });
      },
    },

    createVersion: {
      params: { params: idParams, body: POLICY_BODIES.createVersion },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }, { content: string; schema_version?: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const { content } = ctx.params.body;
        const { schemaVersion } = await this.assertRego(content, ctx.params.body.schema_version, false);
        await this.requireZone(ctx, zoneId);
        const now = new Date();
        const versionId = newId();
        const live = (p: PolicyDoc) => p.zone_id === zoneId && !p.archived_at;
        // The events of the attempt whose number was free (each attempt builds its own).
        let events: OutboxEntry[] = [];
        const doc = await this.insertNumbered<PolicyVersionDoc>(this.policies(), id, live, this.policyVersions(), "policy_id", (version) => {
          events = [this.zoneEvent(ctx, zoneId, "policy_version", versionId, "created", { policy_id: id, version })];
          return {
            _id: versionId, policy_id: id, zone_id: zoneId, version, content, content_sha256: contentSha256(content), schema_version: schemaVersion,
            created_by: ctx.meta.actor?.name ?? "system", created_at: now, ...withNewEvents(events),
          };
        });
        if (!doc) throw notFound("policy_not_found", "policy not found");
        await this.outboxKick("PolicyVersion", doc._id, events);
        return created(ctx, `/v1/zones/${zoneId}/policies/${id}`, { version_id: doc._id, ...versionSummary(doc) });
      },
    },

    remove: {
      params: { params: idParams },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const events = [this.zoneEvent(ctx, zoneId, "policy", id, "deleted")];
        const archived = await this.locked(this.policies(), id, async () => {
          const policy = await this.policies().findById(id, { zone_id: 1, archived_at: 1 }).lean<PolicyDoc>();
          if (!policy || policy.zone_id !== zoneId || policy.archived_at) return false;
          await this.policies().updateOne({ _id: id }, pushEvents({ $set: { archived_at: new Date(), archived: true } }, events));
          return true;
        });
        if (!archived) throw notFound("policy_not_found", "policy not found");
        await this.outboxKick("Policy", id, events);
        return noContent(ctx);
      },
    },

    listSets: {
      params: { params: zoneParams, query: anyQuery },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
        const q = parseListQuery(ctx.params.query);
        const page = await this.listRows<PolicySetDoc>("PolicySet", ctx.params.params.zoneId, q, { where: { archived: false }, projection: { _outbox: 0 } });
        return pageOf(page.rows, q, toPublicPolicySet, {}, "created_at", page.resumeAfter);
      },
    },

    getSet: {
      params: { params: idParams },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const set = await this.liveSet(zoneId, id);
        if (!set) throw notFound("policy_set_not_found", "policy set not found");
        return toPublicPolicySet(set);
      },
    },

    createSet: {
      params: { params: zoneParams },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }, { name: string; description?: string }>>) {
        const { zoneId } = ctx.params.params;
        await this.requireZone(ctx, zoneId);
        checkBody(POLICY_BODIES.createSet, ctx.params.body ?? {}, "invalid_body");
        const body = ctx.params.body;
        const id = newId();
        const set: PolicySetDoc = {
          _id: id, zone_id: zoneId, name: body.name, description: body.description ?? null, created_by: ctx.meta.actor?.name ?? "system",
          co_authored_by_operator: false, created_at: new Date(), archived_at: null, archived: false, active_version_id: null, shadow_version_id: null,
          active_slot: idleSlot(id), activated_at: null, version_ids: [],
        };
        const events = [this.zoneEvent(ctx, zoneId, "policy_set", id, "created")];
        try {
          const [listed] = await this.listFields("PolicySet", zoneId, [set.created_at]);
          await this.sets().create({ ...set, ...listed, ...withNewEvents(events) });
        } catch (err) {
          if (isDuplicateKey(err)) throw conflict("policy_set_name_conflict", "a policy set with this name already exists in the zone");
          throw err;
        }
        await this.zoneCounts.bump(zoneId, { policy_sets: 1 });
        await this.outboxKick("PolicySet", id, events);
        const { active_version_id: _active, ...pub } = toPublicPolicySet(set);
        void _active;
        return created(ctx, `/v1/zones/${zoneId}/policy-sets/${id}`, pub);
      },
    },

    createSetVersion: {
      params: {
        params: idParams,
        body: POLICY_BODIES.createSetVersion,
      },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }, { manifest: ManifestEntry[]; schema_version?: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const schemaVersion = ctx.params.body.schema_version ?? DEFAULT_SCHEMA_VERSION;
        if (!isSupportedSchemaVersion(schemaVersion)) throw new AppError(422, "invalid_schema_version", `unsupported_schema_version:${schemaVersion}`, { detail: `unsupported_schema_version:${schemaVersion}` });
        await this.requireZone(ctx, zoneId);
        if (!(await this.liveSet(zoneId, id))) throw notFound("policy_set_not_found", "policy set not found");
        const manifest = normalizeManifest(ctx.params.body.manifest);
        const draft = { _id: "", policy_set_id: id, zone_id: zoneId, version: 0, manifest, manifest_sha256: manifestSha256(manifest), schema_version: schemaVersion, created_by: "", created_at: new Date() };
        const failure = await this.contractFailure(draft);
        if (failure) throw new AppError(422, "invalid_policy_contract", failure, { detail: failure });
        // Decision 5: the set version compiles with OPA together with the decision contract, or it is refused.
        const bundle = await this.buildBundle(manifest);
        if (!bundle.ok) {
          throw new AppError(422, "invalid_policy_contract", "policy set bundle failed to compile with the decision contract", { detail: "policy set bundle failed to compile with the decision contract", errors: bundle.errors });
        }
        const versionId = newId();
        const live = (set: PolicySetDoc) => set.zone_id === zoneId && !set.archived_at;
        let events: OutboxEntry[] = [];
        const doc = await this.insertNumbered<PolicySetVersionDoc>(this.sets(), id, live, this.setVersions(), "policy_set_id", (version) => {
          events = [this.zoneEvent(ctx, zoneId, "policy_set_version", versionId, "created", { policy_set_id: id, version })];
          return { ...draft, _id: versionId, version, created_by: ctx.meta.actor?.name ?? "system", ...withNewEvents(events) };
        });
        if (!doc) throw notFound("policy_set_not_found", "policy set not found");
        await this.outboxKick("PolicySetVersion", doc._id, events);
        remember(this.bundles, doc._id, Promise.resolve(bundle.wasm), 256);
        remember(this.contractChecks, doc._id, null);
        const pub = toPublicSetVersion(doc);
        return created(ctx, `/v1/zones/${zoneId}/policy-sets/${id}/versions/${doc._id}`, {
          version_id: doc._id, id: doc._id, policy_set_id: id, version: doc.version, manifest_sha256: doc.manifest_sha256, schema_version: doc.schema_version, created_at: pub.created_at,
        });
      },
    },

    listSetVersions: {
      params: { params: idParams, query: anyQuery },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        // Versions are history: an archived set still lists them, as getSetVersion still shows one.
        const set = await this.sets().findById(id, { zone_id: 1 }).lean<PolicySetDoc>();
        if (!set || set.zone_id !== zoneId) throw notFound("policy_set_not_found", "policy set not found");
        const filters = { policy_set_id: id };
        const q = parseListQuery(ctx.params.query, undefined, filters);
        const page = await this.listRows<PolicySetVersionDoc>("PolicySetVersion", id, q, { projection: { _outbox: 0 } });
        return pageOf(page.rows, q, toPublicSetVersion, filters, "created_at", page.resumeAfter);
      },
    },

    getSetVersion: {
      params: { params: pathParams("zoneId", "id", "versionId") },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string; versionId: string }>>) {
        const { zoneId, id, versionId } = ctx.params.params;
        const v = await this.setVersionById(versionId);
        // Works for an archived set too: the versions are history.
        if (!v || v.policy_set_id !== id || v.zone_id !== zoneId) throw notFound("policy_set_version_not_found", "policy set version not found");
        return toPublicSetVersion(v);
      },
    },

    activateSet: {
      params: { params: idParams, body: POLICY_BODIES.activateSet },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }, { version_id: string; shadow_version_id?: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const { version_id: versionId, shadow_version_id: shadowId } = ctx.params.body;
        await this.requireZone(ctx, zoneId);
        const version = await this.liveSetVersion(zoneId, id, versionId);
        if (!version) throw notFound("version_not_found", "version not found in this policy set");
        const failure = await this.contractFailure(version);
        if (failure) throw new AppError(422, "invalid_policy_contract", failure, { detail: failure });
        if (shadowId !== undefined) {
          const shadow = await this.liveSetVersion(zoneId, id, shadowId);
          if (!shadow) throw notFound("shadow_version_not_found", "shadow version not found in this policy set");
          const shadowFailure = await this.contractFailure(shadow);
          if (shadowFailure) throw new AppError(422, "invalid_shadow_policy_contract", shadowFailure, { detail: shadowFailure });
        }
        const invalidate: OutboxEntry = this.event(ctx, POLICY_INVALIDATE_STREAM, {
          zone_id: zoneId, policy_set_id: id, policy_set_version_id: versionId, shadow_version_id: shadowId ?? null,
        });
        const changed = this.zoneEvent(ctx, zoneId, "policy_set", id, "updated", { activated_version_id: versionId, shadow_version_id: shadowId ?? null });
        let res;
        try {
          // Binding, invalidation entry and zone event in one document write.
          res = await this.locked(this.sets(), id, async () => {
            if (!(await this.liveSet(zoneId, id))) return { matchedCount: 0 };
            return this.sets().updateOne(
              { _id: id },
              pushEvents({ $set: { active_version_id: versionId, shadow_version_id: shadowId ?? null, active_slot: activeSlot(zoneId), activated_at: new Date() } }, [invalidate, changed]),
            );
          });
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          const other = await this.sets().findOne({ active_slot: activeSlot(zoneId) }, { _id: 1 }).lean<{ _id: string }>();
          throw conflict("active_policy_set_conflict", "another policy set is active in this zone; archive it before activating this one", { active_policy_set_id: other?._id ?? null });
        }
        if (res.matchedCount !== 1) throw notFound("version_not_found", "version not found in this policy set");
        this.setChanged(ctx, id);
        await this.outboxKick("PolicySet", id, [invalidate, changed]);
        // Warm the bundle (built and loaded into the evaluator) so the first decision after activation does not wait.
        void this.compiledBundle(version)
          .then((wasm: Buffer) => this.evaluator.preload(version._id, wasm))
          .catch(() => undefined);
        ctx.meta.$statusCode = 202;
        const q = new URLSearchParams({ version_id: versionId, outbox_id: invalidate.id });
        return {
          activated: true,
          version_id: versionId,
          shadow_version_id: shadowId ?? null,
          outbox_id: invalidate.id,
          status_url: `/v1/zones/${encodeURIComponent(zoneId)}/policy-sets/${encodeURIComponent(id)}/activation-status?${q.toString()}`,
        };
      },
    },

    activationStatus: {
      params: { params: idParams, query: anyQuery },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }, {}, { version_id?: unknown; outbox_id?: unknown }>>) {
        const { zoneId, id } = ctx.params.params;
        const query = ctx.params.query ?? {};
        const issues = (["version_id", "outbox_id"] as const)
          .filter((k) => query[k] !== undefined && (typeof query[k] !== "string" || (query[k] as string).length < 1))
          .map((k) => ({ path: [k], message: `${k} must be a non-empty string` }));
        if (issues.length) throw invalid("invalid_body", issues, "Request query failed validation");
        const set = await this.sets().findById(id).lean<PolicySetDoc>();
        if (!set || set.zone_id !== zoneId || set.archived_at) throw notFound("policy_set_binding_not_found", "policy set binding not found");
        const versionId = (query.version_id as string | undefined) ?? set.active_version_id;
        if (!versionId) throw notFound("active_policy_set_version_not_found", "the policy set has no active version");
        const activeVersion = set.active_version_id ? await this.setVersionById(set.active_version_id) : null;
        const active = set.active_version_id === versionId;
        const outbox = await this.outboxState(set, versionId, query.outbox_id as string | undefined);
        const sts = { state: "not_configured", detail: "no STS is configured for this control plane; runtimes follow caracal.policy.invalidate" };
        const propagation = propagationStatus(active, outbox.state, sts, versionId);
        return {
          zone_id: zoneId,
          policy_set_id: id,
          version_id: versionId,
          active,
          active_version_id: set.active_version_id ?? null,
          shadow_version_id: set.shadow_version_id ?? null,
          manifest_sha256: activeVersion?.manifest_sha256 ?? null,
          propagation_status: propagation,
          outbox,
          sts,
        };
      },
    },

    simulate: {
      params: { params: idParams, body: POLICY_BODIES.simulate },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }, { version_id: string; input?: Record<string, unknown> }>>) {
        const { zoneId, id } = ctx.params.params;
        const body = ctx.params.body;
        const version = await this.liveSetVersion(zoneId, id, body.version_id);
        if (!version) throw notFound("version_not_found", "version not found in this policy set");
        const failure = await this.contractFailure(version);
        if (failure) throw new AppError(422, "invalid_policy_contract", failure, { detail: failure });
        const base = {
          dry_run: true,
          policy_set_id: id,
          version_id: version._id,
          schema_version: version.schema_version,
          input_schema_version: INPUT_SCHEMA_VERSION,
          manifest_sha256: version.manifest_sha256,
          policies: version.manifest.map((e) => e.policy_version_id),
        };
        if (body.input === undefined) {
          return { ...base, would_activate: true, warnings: [], explanation: { evaluation: "not_executed", reason: NOT_EXECUTED_REASON }, result: null };
        }
        const warnings = inputWarnings(body.input, zoneId, INPUT_SCHEMA_VERSION);
        const wouldActivate = warnings.length === 0;
        const sv = body.input.schema_version;
        const outcome: DecisionOutcome =
          sv !== undefined && sv !== null && sv !== "" && sv !== INPUT_SCHEMA_VERSION
            ? { ok: false, reason: `input schema_version ${String(sv)} is not supported; use ${INPUT_SCHEMA_VERSION}` }
            : await this.decide(version, body.input);
        if (!outcome.ok) {
          return { ...base, would_activate: wouldActivate, warnings: [...warnings, `evaluation_failed:${outcome.reason}`], explanation: { evaluation: "failed", reason: outcome.reason }, result: null };
        }
        return {
          ...base,
          would_activate: wouldActivate,
          warnings,
          explanation: { evaluation: "executed", decision: outcome.decision.decision, policy_set_version_id: version._id, manifest_sha256: version.manifest_sha256, reason: EXECUTED_REASON },
          result: outcome.decision,
        };
      },
    },

    removeSet: {
      params: { params: idParams },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const res = await this.locked(this.sets(), id, async () => {
          const set = await this.liveSet(zoneId, id);
          if (!set) return null;
          const events = [this.zoneEvent(ctx, zoneId, "policy_set", id, "deleted")];
          // Unlike the reference (§6.2), archiving an active set deactivates it and tells the runtimes.
          const wasActive = set.active_slot === activeSlot(zoneId);
          if (wasActive) events.unshift(this.event(ctx, POLICY_INVALIDATE_STREAM, { zone_id: zoneId, policy_set_id: id, policy_set_version_id: null, shadow_version_id: null, reason: "policy_set_archived" }));
          const write = await this.sets().updateOne(
            { _id: id },
            pushEvents({ $set: { archived_at: new Date(), archived: true, active_slot: idleSlot(id), active_version_id: null, shadow_version_id: null } }, events),
          );
          return { matched: write.matchedCount, events };
        });
        this.setChanged(ctx, id);
        if (!res || res.matched !== 1) throw notFound("policy_set_not_found", "policy set not found");
        await this.zoneCounts.bump(zoneId, { policy_sets: -1 });
        await this.outboxKick("PolicySet", id, res.events);
        return noContent(ctx);
      },
    },

    /** Internal: the zone overview's policy-set counts; a zone has at most one active set (its active slot). */
    zoneStats: {
      visibility: "public",
      params: { zone_id: "string" },
      async handler(ctx: ApiContext<{ zone_id: string }>) {
        const zoneId = ctx.params.zone_id;
        const [counts, active] = await Promise.all([
          this.zoneCounts.read(zoneId, async () => {
            const sets = await this.sets().find({ zone_id: zoneId, archived: false }, { _id: 1 }).lean<PolicySetDoc[]>();
            return { counts: { policy_sets: sets.length } };
          }),
          this.sets().findOne({ active_slot: activeSlot(zoneId) }, { name: 1, active_version_id: 1, archived_at: 1 }).lean<PolicySetDoc>(),
        ]);
        const enforcing = active && !active.archived_at && active.active_version_id ? active : null;
        return { total: counts.policy_sets ?? 0, enforcing: enforcing ? 1 : 0, active_name: enforcing?.name ?? null };
      },
    },

    /** Internal: the decision for a zone under its active policy set (what a runtime would enforce). */
    decideForZone: {
      visibility: "public",
      params: { zone_id: "string", input: { type: "object" } },
      async handler(ctx: ApiContext<{ zone_id: string; input: Record<string, unknown> }>) {
        // The active slot is freed when a set is archived, so the slot alone finds the live active set.
        const found = await this.sets().findOne({ active_slot: activeSlot(ctx.params.zone_id) }, { _outbox: 0 }).lean<PolicySetDoc>();
        const set = found && !found.archived_at ? found : null;
        const version = set?.active_version_id ? await this.setVersionById(set.active_version_id) : null;
        if (!set || !version) {
          return { policy_set_id: null, policy_set_version_id: null, result: { decision: "deny", evaluation_status: "complete", determining_policies: [], diagnostics: [{ reason: "no_active_policy_set" }] } };
        }
        const outcome = await this.decide(version, ctx.params.input);
        if (!outcome.ok) throw new AppError(503, "policy_eval_failed", outcome.reason);
        return { policy_set_id: set._id, policy_set_version_id: version._id, result: outcome.decision };
      },
    },
  },

  events: {
    /** Another instance changed a set: drop what the decision path remembers of it. */
    "policies.policySet.changed"(this: any, ctx: ApiContext<{ id: string }>) {
      this.liveSets.delete(ctx.params.id);
    },
  },

  methods: {
    policies(this: any) {
      return this.models.Policy as Model<PolicyDoc>;
    },
    policyVersions(this: any) {
      return this.models.PolicyVersion as Model<PolicyVersionDoc>;
    },
    sets(this: any) {
      return this.models.PolicySet as Model<PolicySetDoc>;
    },
    setVersions(this: any) {
      return this.models.PolicySetVersion as Model<PolicySetVersionDoc>;
    },

    async requireZone(ctx: ApiContext, zoneId: string) {
      await activeZoneOf(ctx, zoneId);
    },

    /** Schema version, the §2.2 checks, then OPA's compile; 422 with the reference's codes. */
    async assertRego(content: string, schemaVersionIn: string | undefined, withValidFlag: boolean) {
      const valid = withValidFlag ? { valid: false } : {};
      const schemaVersion = schemaVersionIn ?? DEFAULT_SCHEMA_VERSION;
      if (!isSupportedSchemaVersion(schemaVersion)) {
        throw new AppError(422, "invalid_schema_version", `unsupported_schema_version:${schemaVersion}`, { ...valid, detail: `unsupported_schema_version:${schemaVersion}` });
      }
      const check = checkRego(content);
      if (!check.ok) throw new AppError(422, "invalid_rego", `policy content failed validation: ${check.code}`, { ...valid, detail: check.code });
      const errors: OpaError[] = await this.opaCheck(content);
      if (errors.length) {
        throw new AppError(422, "invalid_rego", `OPA refused the policy: ${errors[0]!.message}`, { ...valid, detail: errors[0]!.code, errors });
      }
      return { schemaVersion, preview: check.preview };
    },

    /** `opa check` of one module, remembered by content hash (validate then create compiles once). */
    opaCheck(this: any, content: string) {
      const key = contentSha256(content);
      const hit = this.checks.get(key);
      if (hit) return hit;
      const run = this.opa.check(content);
      run.catch(() => this.checks.delete(key));
      return remember(this.checks, key, run, 1024);
    },

    /**
     * Inserts the parent's next version under the parent's lock, then lists it on the parent. A number
     * already taken (a writer that crashed between the two writes) is adopted into the list and skipped,
     * so numbers have no gaps and the unique index rules out duplicates. Null when the parent is gone.
     */
    async insertNumbered(parent: Model<any>, parentId: string, live: (p: any) => boolean, child: Model<any>, scope: string, build: (version: number) => any) {
      return this.locked(parent, parentId, async () => {
        const p = await parent.findById(parentId, { version_ids: 1, zone_id: 1, archived_at: 1 }).lean<{ version_ids?: string[] }>();
        if (!p || !live(p)) return null;
        let next = (p.version_ids?.length ?? 0) + 1;
        for (let attempt = 0; attempt < 20; attempt++, next++) {
          const doc = build(next);
          // Set versions are listed per set: they take their bucket fields at creation.
          if (child === this.setVersions()) Object.assign(doc, (await this.listFields("PolicySetVersion", parentId, [doc.created_at]))[0]);
          try {
            await child.create(doc);
          } catch (err) {
            if (!isDuplicateKey(err)) throw err;
            const leftover = await child.findOne({ [scope]: parentId, version: next }, { _id: 1 }).lean<{ _id: string }>();
            if (leftover) await parent.updateOne({ _id: parentId }, { $push: { version_ids: leftover._id } });
            continue;
          }
          await parent.updateOne({ _id: parentId }, { $push: { version_ids: doc._id } });
          return doc;
        }
        throw new AppError(503, "write_busy", "could not allocate a version number; retry");
      });
    },

    /**
     * liveSet for the decision path (simulate, activate's version check): remembered for a second, and
     * forgotten at once by every policies instance when the set changes (see setChanged).
     */
    async liveSetCached(this: any, zoneId: string, setId: string) {
      const hit = this.liveSets.get(setId);
      if (hit && hit.until > Date.now()) return hit.set && hit.set.zone_id === zoneId ? hit.set : null;
      const set = await this.sets().findById(setId, { _outbox: 0 }).lean();
      const live = set && !set.archived_at ? set : null;
      remember(this.liveSets, setId, { set: live, until: Date.now() + LIVE_SET_TTL_MS }, 4096);
      return live && live.zone_id === zoneId ? live : null;
    },

    setChanged(this: any, ctx: ApiContext, setId: string) {
      this.liveSets.delete(setId);
      ctx.broadcast("policies.policySet.changed", { id: setId });
    },

    /** A non-archived set of this zone, read by id (the only lookup FerretDB answers without a scan). */
    async liveSet(zoneId: string, setId: string) {
      const set = await this.sets().findById(setId, { _outbox: 0 }).lean<PolicySetDoc>();
      return set && set.zone_id === zoneId && !set.archived_at ? set : null;
    },

    /** §3.3.1 for a stored (immutable) version: computed once, then remembered. */
    async contractFailure(this: any, version: PolicySetVersionDoc) {
      if (version._id && this.contractChecks.has(version._id)) return this.contractChecks.get(version._id);
      const ids = [...new Set(version.manifest.map((e) => e.policy_version_id))];
      const rows = (await Promise.all(ids.map((id) => this.policyVersions().findById(id, { _outbox: 0 }).lean()))).filter(Boolean) as PolicyVersionDoc[];
      const ownerIds = [...new Set(rows.map((r) => r.policy_id))];
      const owners = new Set((await Promise.all(ownerIds.map((id) => this.policies().findById(id, { _id: 1 }).lean()))).filter(Boolean).map((p: any) => p._id as string));
      const members = new Map<string, ManifestMember>();
      for (const r of rows as PolicyVersionDoc[]) if (owners.has(r.policy_id)) members.set(r._id, { id: r._id, zone_id: r.zone_id, schema_version: r.schema_version, content: r.content });
      const failure = manifestContractFailure(version.manifest, version.schema_version, version.zone_id, members);
      if (version._id) remember(this.contractChecks, version._id, failure);
      return failure;
    },

    /** A version of a non-archived set in this zone, or null (→ version_not_found). */
    async liveSetVersion(zoneId: string, setId: string, versionId: string) {
      const [set, v] = await Promise.all([this.liveSetCached(zoneId, setId), this.setVersionById(versionId)]);
      if (!set) return null;
      return v && v.policy_set_id === setId && v.zone_id === zoneId ? v : null;
    },

    /** Set versions never change, so they are cached by id. */
    async setVersionById(this: any, id: string) {
      const hit = this.setVersionCache.get(id);
      if (hit) return hit;
      const v = await this.setVersions().findById(id, { _outbox: 0 }).lean();
      if (v) remember(this.setVersionCache, id, v, 2048);
      return v;
    },

    /** The version's compiled wasm: built once per version (single flight), then kept. */
    compiledBundle(this: any, version: PolicySetVersionDoc) {
      const hit = this.bundles.get(version._id);
      if (hit) return hit;
      const build = (async () => {
        const res = await this.buildBundle(version.manifest);
        if (!res.ok) throw new Error(`bundle does not compile: ${res.errors[0]?.message ?? "unknown error"}`);
        return res.wasm;
      })();
      build.catch(() => this.bundles.delete(version._id));
      return remember(this.bundles, version._id, build, 256);
    },

    async buildBundle(this: any, manifest: ManifestEntry[]) {
      const rows = await Promise.all(manifest.map((e) => this.policyVersions().findById(e.policy_version_id, { content: 1 }).lean()));
      const byId = new Map((rows.filter(Boolean) as { _id: string; content: string }[]).map((r) => [r._id, r.content]));
      const modules = manifest.map((e) => ({ name: e.policy_version_id, content: byId.get(e.policy_version_id) ?? "" }));
      return this.opa.buildWasm([...modules, ...CONTRACT_MODULES]);
    },

    async decide(this: any, version: PolicySetVersionDoc, input: unknown): Promise<DecisionOutcome> {
      const res = await this.evaluator.evaluate(version._id, () => this.compiledBundle(version), input);
      if (!res.ok) return { ok: false, reason: res.error };
      const out = (res.result as { result?: Decision }[] | undefined)?.[0]?.result;
      // An undefined result counts as deny, as in the reference runtime.
      if (out === undefined) return { ok: true, decision: { decision: "deny", evaluation_status: "complete", determining_policies: [], diagnostics: [{ reason: "no_rule_matched" }] } };
      if ((out.decision !== "allow" && out.decision !== "deny") || out.evaluation_status !== "complete") return { ok: false, reason: "the decision contract produced an invalid decision" };
      return { ok: true, decision: out };
    },

    /** At start, the most recently activated versions are compiled and loaded before the first decision asks. */
    async warmActiveVersions(this: any) {
      const sets = await this.sets().find({ archived_at: null, active_version_id: { $ne: null } }, { active_version_id: 1 }).sort({ activated_at: -1 }).limit(WARM_AT_START).lean();
      for (const s of sets as PolicySetDoc[]) {
        const version = s.active_version_id ? await this.setVersionById(s.active_version_id) : null;
        if (version) await this.evaluator.preload(version._id, await this.compiledBundle(version));
      }
    },

    /** The invalidation entry of an activation, read back from the outbox state kept in the set document. */
    async outboxState(set: PolicySetDoc, versionId: string, outboxId: string | undefined) {
      const expected = { zoneId: set.zone_id, setId: set._id, versionId };
      const entries = (await this.currentOutbox("PolicySet", set._id, set._outbox)) as StoredEntry[];
      if (!outboxId) return outboxStatus(newestInvalidation(entries, expected), undefined, expected);
      let entry = entries.find((e) => e.id === outboxId);
      if (!entry) {
        // An entry of another set (or zone) is a mismatch, not a missing one. Rare path: a scan is fine.
        const other = await this.sets().findOne({ "_outbox.id": outboxId }, { _outbox: 1 }).lean<PolicySetDoc>();
        entry = other ? ((await this.currentOutbox("PolicySet", other._id, other._outbox)) as StoredEntry[]).find((e) => e.id === outboxId) : undefined;
      }
      return outboxStatus(entry, outboxId, expected);
    },
  },

  created(this: any) {
    this.opa = new Opa(this.settings.opaBin ?? config().opaBin);
    this.evaluator = new Evaluator(this.settings.evalTimeoutMs ?? config().policyEvalTimeoutMs);
    this.bundles = new Map<string, Promise<Buffer>>();
    this.contractChecks = new Map<string, string | null>();
    this.setVersionCache = new Map<string, PolicySetVersionDoc>();
    this.checks = new Map<string, Promise<OpaError[]>>();
    this.liveSets = new Map<string, { set: PolicySetDoc | null; until: number }>();
    this.zoneCounts = new ZoneCounters(redisClient(this.settings.redisUrl ?? config().redisUrl), `${this.db.name}:zonestats:policies`);
  },

  async started(this: any) {
    await this.opa.init();
    await this.evaluator.warm();
    void this.warmActiveVersions().catch((err: Error) => this.logger.warn({ err: err.message }, "warming active policy sets failed; they load on first use"));
  },

  async stopped(this: any) {
    await this.evaluator.stop();
    await this.opa.close();
  },
};

export default PoliciesService;
