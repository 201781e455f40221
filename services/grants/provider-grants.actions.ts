// Provider grants (reference-policy §3.6): token import (upsert), the OAuth authorize and callback steps, revoke.
import { badRequest, notFound } from "../../shared/errors";
import { activeZoneOf } from "../../shared/zones-client";
import { pushEvents } from "../../shared/outbox/entry";
import { config } from "../../shared/config";
import { redisClient } from "../../shared/redis";
import { anyQuery, checkBody, pathParams } from "../../shared/validation";
import type { ApiContext, RouteParams } from "../../shared/meta";
import { activeKeyOf, toPublicProviderGrant, type ProviderGrantDoc } from "./models/grant.model";
import { checkExpiresAt, parseCallbackQuery } from "./grant-rules";
import { GRANT_BODIES } from "./grants.api";
import { allowedTokenEndpoint, buildAuthorizationUrl, clientAuth, exchangeCode, parseStoredState, randomToken, STATE_TTL_SEC, type StoredState } from "./oauth";
import { connectedPage, failedPage, wantsHtml } from "./callback-page";
import { toEnvelope } from "../../gateway/errors";
import type { GrantsThis } from "./grants.service";

interface TupleBody {
  user_id: string;
  resource_id: string;
  provider_id: string;
}
interface ImportBody extends TupleBody {
  scopes: string[];
  access_token: string;
  refresh_token?: string;
  expires_at?: string;
}
interface AuthorizeBody extends TupleBody {
  scopes: string[];
}

type ZonePath = { zoneId: string };

const stateKey = (state: string) => `${config().namespace}:api:provider_oauth_state:${state}`;

export const providerGrantActions = {
  createProviderGrant: {
    params: { params: pathParams("zoneId"), body: { type: "any", optional: true } },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<ZonePath, ImportBody>>) {
      const { zoneId } = ctx.params.params;
      await activeZoneOf(ctx, zoneId);
      checkBody(GRANT_BODIES.createProviderGrant, ctx.params.body, "invalid_provider_grant");
      const body = ctx.params.body;
      const expiresAt = checkExpiresAt(body.expires_at, "invalid_provider_grant");
      await this.checkProviderTarget(ctx, zoneId, body, "only oauth2_authorization_code providers use delegated provider grants");
      const grant = await this.upsertProviderGrant(ctx, { zoneId, ...pick(body), scopes: body.scopes, tokens: { access_token: body.access_token, refresh_token: body.refresh_token ?? null }, expiresAt });
      ctx.meta.$statusCode = 201;
      return toPublicProviderGrant(grant);
    },
  },

  authorize: {
    params: { params: pathParams("zoneId"), body: { type: "any", optional: true } },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<ZonePath, AuthorizeBody>>) {
      const { zoneId } = ctx.params.params;
      await activeZoneOf(ctx, zoneId);
      checkBody(GRANT_BODIES.authorize, ctx.params.body, "invalid_provider_oauth_authorize");
      const body = ctx.params.body;
      const { provider } = await this.checkProviderTarget(ctx, zoneId, body, "only oauth2_authorization_code providers use browser authorization");
      const state = randomToken();
      const verifier = randomToken();
      const url = buildAuthorizationUrl(provider.config_json, state, verifier);
      const stored: StoredState = { zone_id: zoneId, ...pick(body), scopes: body.scopes, code_verifier: verifier };
      const res = await redisClient().multi().set(stateKey(state), JSON.stringify(stored), "EX", STATE_TTL_SEC).time().exec();
      const failed = res?.find(([err]) => err);
      if (!res || failed) throw new Error("could not keep the OAuth state");
      const [seconds, micros] = res[1]![1] as [string, string];
      const expiresAt = new Date(Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) + STATE_TTL_SEC * 1000);
      return { authorization_url: url, state, expires_at: expiresAt.toISOString() };
    },
  },

  /**
   * The IdP's redirect (public: the browser lands here). The state is taken once (GETDEL), whatever
   * happens next; every check of §3.6 in order; the answer is HTML for a browser, JSON otherwise.
   */
  callback: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<ZonePath>>) {
      const html = wantsHtml(ctx.meta.accept);
      try {
        const grant = toPublicProviderGrant(await this.completeAuthorization(ctx, ctx.params.params.zoneId, ctx.params.query));
        ctx.meta.$statusCode = 201;
        if (!html) return grant;
        htmlAnswer(ctx);
        return connectedPage(grant);
      } catch (err) {
        if (!html) throw err;
        // The same status, code and description the gateway's JSON envelope would carry.
        const { status, body } = toEnvelope(err as object, ctx.requestID ?? "");
        if (status >= 500 && (err as { name?: string }).name !== "AppError") this.logger.error({ err: { name: (err as Error).name, type: (err as { type?: unknown }).type } }, "oauth callback failed");
        ctx.meta.$statusCode = status;
        htmlAnswer(ctx);
        return failedPage(body.error, body.error_description, ctx.requestID ?? undefined);
      }
    },
  },

  /** Revokes the active grant of the tuple (200 with the row); none active is 404, a repeat call too. */
  revokeProviderGrant: {
    params: { params: pathParams("zoneId"), body: { type: "any", optional: true } },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<ZonePath, TupleBody>>) {
      const { zoneId } = ctx.params.params;
      checkBody(GRANT_BODIES.revokeProviderGrant, ctx.params.body, "invalid_provider_grant_revoke");
      const body = ctx.params.body;
      const key = activeKeyOf(zoneId, body.user_id, body.resource_id, body.provider_id);
      const none = () => notFound("provider_grant_not_found", "no active provider grant for this user, resource and provider");
      const found = await this.providerGrants().findOne({ active_key: key }, { _id: 1 }).lean<{ _id: string }>();
      if (!found) throw none();
      const id = found._id;
      const events = [this.zoneEvent(ctx, zoneId, "provider_grant", id, "deleted")];
      const revoked = await this.locked(this.providerGrants(), id, async () => {
        const current = await this.providerGrants().findById(id, { _outbox: 0 }).lean<ProviderGrantDoc>();
        if (!current || current.active_key !== key) throw none();
        const now = new Date();
        const set = { status: "revoked", active_key: `revoked:${id}`, updated_at: now, revoked_at: now };
        await this.providerGrants().updateOne({ _id: id }, pushEvents({ $set: set }, events));
        return { ...current, ...set } as ProviderGrantDoc;
      });
      await this.outboxKick("ProviderGrant", id, events);
      return toPublicProviderGrant(revoked);
    },
  },
};

/** The page is static text: it may load nothing and be framed by nobody. */
function htmlAnswer(ctx: ApiContext): void {
  ctx.meta.$responseType = "text/html; charset=utf-8";
  ctx.meta.$responseHeaders = { "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'" };
}

const pick = (b: TupleBody): TupleBody => ({ user_id: b.user_id, resource_id: b.resource_id, provider_id: b.provider_id });

/** Callback orders 2–12 and the upsert (order 1, the path id, is the route's params check). */
export async function completeAuthorization(this: GrantsThis, ctx: ApiContext, zoneId: string, query: Record<string, unknown> | undefined): Promise<ProviderGrantDoc> {
  const q = parseCallbackQuery(query);
  const raw = await redisClient().getdel(stateKey(q.state));
  if (raw === null) throw badRequest("oauth_state_expired", "the authorization state is unknown, expired or already used");
  const state = parseStoredState(raw);
  if (!state) throw badRequest("oauth_state_invalid", "the stored authorization state is not valid");
  if (state.zone_id !== zoneId) throw badRequest("oauth_state_mismatch", "the authorization state belongs to another zone");
  if (q.error) throw badRequest("provider_oauth_denied", q.error_description || q.error, { detail: q.error_description || q.error });
  if (!q.code) throw badRequest("authorization_code_required", "the callback carries no authorization code");
  // Not in the reference's order: a zone archived since the consent started takes no new grant (README decision 4).
  await activeZoneOf(ctx, zoneId);
  const { provider } = await this.checkProviderTarget(ctx, zoneId, state, null);
  const client = clientAuth(provider.config_json, provider.secret_config_keys);
  const endpoint = allowedTokenEndpoint(provider.config_json);
  const secret = client.method === "none" ? null : await this.clientSecret(ctx, zoneId, provider.id);
  if (client.method !== "none" && !secret) throw badRequest("invalid_provider_config", "the provider has no client secret", { detail: "client_secret is required" });
  const tokens = await exchangeCode(endpoint, provider.config_json, { ...client, secret }, q.code, state.code_verifier, this.exchangeOptions);
  return this.upsertProviderGrant(ctx, { zoneId, ...pick(state), scopes: state.scopes, tokens: { access_token: tokens.access_token, refresh_token: tokens.refresh_token }, expiresAt: tokens.expires_at });
}
