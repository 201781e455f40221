// Admin tokens: the credentials of /v1. Lives in the gateway process and owns `admin_tokens`.
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { MongoMixin, type MongoMethods } from "../shared/mixins/mongo.mixin";
import { badRequest, forbidden, notFound } from "../shared/errors";
import { newId } from "../shared/ids";
import { anyQuery } from "../shared/validation";
import { activeZoneOf } from "../shared/zones-client";
import { parseListQuery, pageOf } from "../shared/pagination";

/** Admin tokens are listed in one scope. */
const ALL_TOKENS = "all";
import { created, isDuplicateKey, noContent, type ApiContext, type RouteParams } from "../shared/meta";
import type { Actor } from "../shared/actor";
import { config } from "../shared/config";
import { digestSchema, toPublicToken, tokenSchema, type TokenDoc } from "./admin-token.model";
import { ADMIN_TOKEN_BODIES } from "./admin-tokens.api";
import { CONSOLE_LABELS, deriveConsoleToken, hashToken, lookupDigest, newAdminToken, verifyTokenHash } from "./tokens";

const toActor = (t: TokenDoc): Actor => ({
  id: t._id,
  name: t.name,
  scope: t.scope,
  capability: t.capability,
  zone_id: t.zone_id,
  created_by: t.created_by,
  bootstrap: t.created_by === "env-bootstrap",
});

/**
 * A token whose Argon2id hash verified is trusted for HASH_TRUST_MS; its row (revoked?) is re-read by id
 * every RECHECK_MS, and a revocation on any gateway clears every cache at once.
 */
const RECHECK_MS = 5_000;
const HASH_TRUST_MS = 10 * 60_000;
const CACHE_MAX = 512;

interface CachedActor {
  actor: Actor;
  checkedAt: number;
  hashOkUntil: number;
}
const LAST_USED_DEBOUNCE_MS = 60_000;

interface Methods extends MongoMethods {
  tokens(): Model<TokenDoc>;
  verifyToken(token: string, digest: string, hit: CachedActor | undefined): Promise<Actor | null>;
  assertManager(actor: Actor | undefined): void;
  seed(name: string, token: string, capability: "read" | "write", createdBy: string): Promise<void>;
}

const AdminTokensService: ServiceSchema<{}, Methods> = {
  name: "adminTokens",
  mixins: [MongoMixin({ AdminToken: { schema: tokenSchema, collection: "admin_tokens" }, TokenDigest: { schema: digestSchema, collection: "admin_token_digests" } }, { listed: ["AdminToken"] })],

  actions: {
    list: {
      params: { query: anyQuery },
      async handler(ctx: ApiContext<RouteParams>) {
        this.assertManager(ctx.meta.actor);
        const q = parseListQuery(ctx.params.query);
        const page = await this.listRows<TokenDoc>("AdminToken", ALL_TOKENS, q, { projection: { hash: 0, digest: 0 } });
        return pageOf(page.rows, q, toPublicToken, {}, "created_at", page.resumeAfter);
      },
    },

    create: {
      params: {
        body: ADMIN_TOKEN_BODIES.create,
      },
      async handler(ctx: ApiContext<RouteParams<{}, { name: string; scope: "global" | "zone"; zone_id?: string; capability?: "read" | "write" }>>) {
        const actor = ctx.meta.actor;
        this.assertManager(actor);
        const body = ctx.params.body;
        if (body.scope === "zone" && !body.zone_id) throw badRequest("zone_id_required", "zone_id is required for a zone-scoped token");
        if (body.scope === "global" && body.zone_id) throw badRequest("zone_id_not_allowed_for_global", "a global token has no zone_id");
        if (body.zone_id) {
          await activeZoneOf(ctx, body.zone_id);
        }
        const token = newAdminToken();
        const doc: TokenDoc = {
          _id: newId(),
          name: body.name,
          scope: body.scope,
          capability: body.capability ?? "write",
          zone_id: body.zone_id ?? null,
          created_by: `admin:${actor!.id}`,
          created_at: new Date(),
          last_used_at: null,
          revoked_at: null,
          digest: lookupDigest(token),
          hash: await hashToken(token),
        };
        await this.models.TokenDigest.create({ _id: doc.digest, token_id: doc._id });
        await this.tokens().create({ ...doc, ...(await this.listFields("AdminToken", ALL_TOKENS, [doc.created_at]))[0] });
        const { last_used_at: _l, revoked_at: _r, ...shown } = toPublicToken(doc);
        return created(ctx, `/v1/admin-tokens/${doc._id}`, { ...shown, token });
      },
    },

    revoke: {
      params: { params: { type: "object", props: { id: { type: "string", min: 1, max: 128 } } } },
      async handler(ctx: ApiContext<RouteParams<{ id: string }>>) {
        this.assertManager(ctx.meta.actor);
        const id = ctx.params.params.id;
        await this.locked(this.tokens(), id, async () => {
          const row = await this.tokens().findById(id).lean<TokenDoc>();
          if (!row || row.revoked_at) throw notFound("admin_token_not_found", "admin token not found");
          await this.tokens().updateOne({ _id: id }, { $set: { revoked_at: new Date() } });
        });
        // Every gateway drops its cached verification at once instead of waiting out the window.
        ctx.broadcast("adminTokens.revoked", { id: ctx.params.params.id });
        return noContent(ctx);
      },
    },

    /** Internal: the actor behind a bearer token, or null. */
    verify: {
      visibility: "public",
      params: { token: { type: "string", min: 1, max: 4096 } },
      async handler(ctx: ApiContext<{ token: string }>): Promise<Actor | null> {
        const digest = lookupDigest(ctx.params.token);
        const hit = this.cache.get(digest);
        if (hit && Date.now() - hit.checkedAt < RECHECK_MS) return hit.actor;
        // One verification per token at a time: a burst of requests with a cold cache waits for it
        // instead of running one Argon2id (64 MiB) each.
        let pending = this.inflight.get(digest);
        if (!pending) {
          pending = this.verifyToken(ctx.params.token, digest, hit).finally(() => this.inflight.delete(digest));
          this.inflight.set(digest, pending);
        }
        return pending;
      },
    },
  },

  events: {
    "adminTokens.revoked"(this: any) {
      this.cache.clear();
    },
  },

  methods: {
    tokens(this: any) {
      return this.models.AdminToken as Model<TokenDoc>;
    },

    async verifyToken(token: string, digest: string, hit: CachedActor | undefined) {
      const now = Date.now();
      let row: TokenDoc | null;
      if (hit && hit.hashOkUntil > now) {
        row = await this.tokens().findById(hit.actor.id).lean<TokenDoc>();
      } else {
        const pointer: { token_id: string } | null = await this.models.TokenDigest.findById(digest).lean();
        row = pointer ? await this.tokens().findById(pointer.token_id).lean<TokenDoc>() : null;
        if (row && (!row.hash || !(await verifyTokenHash(row.hash, token)))) row = null;
      }
      if (!row || row.revoked_at || row.digest !== digest) {
        this.cache.delete(digest);
        return null;
      }
      const actor = toActor(row);
      if (this.cache.size >= CACHE_MAX && !this.cache.has(digest)) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(digest, { actor, checkedAt: Date.now(), hashOkUntil: hit && hit.hashOkUntil > now ? hit.hashOkUntil : Date.now() + HASH_TRUST_MS });
      const lastWrite = this.lastUsedWrites.get(row._id) ?? 0;
      if (Date.now() - lastWrite > LAST_USED_DEBOUNCE_MS) {
        this.lastUsedWrites.set(row._id, Date.now());
        void this.locked(this.tokens(), row._id, () => this.tokens().updateOne({ _id: row!._id }, { $set: { last_used_at: new Date() } })).catch(() => undefined);
      }
      return actor;
    },

    assertManager(actor: Actor | undefined) {
      if (!actor || actor.scope !== "global") throw forbidden("admin_token_management_requires_global", "admin tokens are managed with a global token");
      if (actor.created_by.startsWith("env-derived")) throw forbidden("admin_token_management_forbidden_for_derived_token", "Console tokens cannot manage admin tokens");
    },

    /** Inserts a configured token once; a revoked row with the same value is not revived. */
    async seed(name: string, token: string, capability: "read" | "write", createdBy: string) {
      const digest = lookupDigest(token);
      // The digest pointer is written first; a pointer without its row (a crash in between) gets the row now.
      let pointer: { token_id: string } | null = await this.models.TokenDigest.findById(digest).lean();
      if (!pointer) {
        try {
          await this.models.TokenDigest.create({ _id: digest, token_id: newId() });
        } catch (err) {
          if (!isDuplicateKey(err)) throw err; // another gateway seeded it first
        }
        pointer = await this.models.TokenDigest.findById(digest).lean();
      }
      if (pointer && !(await this.tokens().findById(pointer.token_id).lean())) {
        try {
          const createdAt = new Date();
          const [listed] = await this.listFields("AdminToken", ALL_TOKENS, [createdAt]);
          await this.tokens().create({ _id: pointer.token_id, name, scope: "global", capability, zone_id: null, created_by: createdBy, created_at: createdAt, last_used_at: null, revoked_at: null, digest, hash: await hashToken(token), ...listed });
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
        }
      }
      // A changed env value retires the rows seeded from the previous one.
      await this.tokens().updateMany({ created_by: createdBy, digest: { $ne: digest }, revoked_at: null }, { $set: { revoked_at: new Date() } });
    },
  },

  created(this: any) {
    this.cache = new Map();
    this.inflight = new Map();
    this.lastUsedWrites = new Map();
  },

  async started(this: any) {
    const bootstrap = config().adminToken;
    await this.seed("bootstrap", bootstrap, "write", "env-bootstrap");
    await this.seed("console-read-only", deriveConsoleToken(bootstrap, CONSOLE_LABELS.read), "read", "env-derived");
    await this.seed("console-write", deriveConsoleToken(bootstrap, CONSOLE_LABELS.write), "write", "env-derived-write");
  },
};

export default AdminTokensService;
