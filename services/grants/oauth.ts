// The OAuth authorization-code flow with PKCE (reference-policy §3.6): state, the authorization URL, the
// token endpoint policy and the code exchange request. Pure functions besides the HTTP call.
import { createHash, randomBytes } from "node:crypto";
import { AppError, badRequest } from "../../shared/errors";
import { postForm, ExchangeFailure, type PostOptions } from "./token-exchange";

export const STATE_TTL_SEC = 600;

/** What the authorize step keeps in Redis under the state, for the callback to take once. */
export interface StoredState {
  zone_id: string;
  user_id: string;
  resource_id: string;
  provider_id: string;
  scopes: string[];
  code_verifier: string;
}

/** 32 random bytes, base64url (43 characters): the state and the PKCE verifier. */
export const randomToken = (): string => randomBytes(32).toString("base64url");

export const pkceChallenge = (verifier: string): string => createHash("sha256").update(verifier).digest("base64url");

export function parseStoredState(raw: string): StoredState | null {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  const s = v as Record<string, unknown>;
  const str = (k: string) => typeof s?.[k] === "string" && (s[k] as string).length > 0;
  if (!s || typeof s !== "object" || !["zone_id", "user_id", "resource_id", "provider_id", "code_verifier"].every(str)) return null;
  if (!Array.isArray(s.scopes) || !s.scopes.every((x) => typeof x === "string")) return null;
  return s as unknown as StoredState;
}

const nonEmpty = (v: unknown): v is string => typeof v === "string" && v.trim().length > 0;

/** The config the browser step needs (order 8 and 9 of authorize). */
export function authorizationEndpoint(config: Record<string, unknown>): URL {
  if (!nonEmpty(config.authorization_endpoint) || !nonEmpty(config.redirect_uri) || !nonEmpty(config.client_id)) {
    throw badRequest("invalid_provider_config", "the provider needs authorization_endpoint, redirect_uri and client_id", { detail: "authorization_endpoint, redirect_uri and client_id are required" });
  }
  let url: URL;
  try {
    url = new URL(config.authorization_endpoint);
  } catch {
    throw endpointInvalid("authorization_endpoint does not parse as a URL");
  }
  if (url.protocol !== "https:") throw endpointInvalid("authorization_endpoint must use https");
  if (url.username || url.password) throw endpointInvalid("authorization_endpoint must not carry credentials");
  return url;
}

const endpointInvalid = (detail: string) => badRequest("provider_authorization_endpoint_invalid", detail, { detail });

/**
 * The IdP URL: the endpoint with its own query kept, then the config's `authorization_params`, then the
 * protocol parameters (which override entries of the same name), the provider-config scopes, and the
 * S256 challenge. The Caracal scopes of the request are not sent to the IdP.
 */
export function buildAuthorizationUrl(config: Record<string, unknown>, state: string, verifier: string): string {
  const url = authorizationEndpoint(config);
  const params = (config.authorization_params ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(params)) if (typeof v === "string" && v.length) url.searchParams.set(k, v);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", String(config.client_id));
  url.searchParams.set("redirect_uri", String(config.redirect_uri));
  url.searchParams.set("state", state);
  const scopes = Array.isArray(config.scopes) ? config.scopes.filter((s): s is string => typeof s === "string" && s.length > 0) : [];
  if (scopes.length) url.searchParams.set("scope", scopes.join(" "));
  url.searchParams.set("code_challenge", pkceChallenge(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  return url.toString();
}

export type ClientAuthMethod = "client_secret_basic" | "client_secret_post" | "none";

/**
 * Order 9: the client id, and a stored client secret unless the method is `none` (judged by the secret's
 * name, so the secret itself is fetched only once the exchange is sure to run).
 */
export function clientAuth(config: Record<string, unknown>, secretKeys: string[]): { clientId: string; method: ClientAuthMethod } {
  const method = (config.client_auth_method ?? "client_secret_basic") as ClientAuthMethod;
  if (!nonEmpty(config.client_id)) throw badRequest("invalid_provider_config", "the provider has no client_id", { detail: "client_id is required" });
  if (!["client_secret_basic", "client_secret_post", "none"].includes(method)) throw badRequest("invalid_provider_config", "unsupported client_auth_method", { detail: `client_auth_method ${method} is not supported here` });
  if (method !== "none" && !secretKeys.includes("client_secret")) throw badRequest("invalid_provider_config", "the provider has no client secret", { detail: "client_secret is required" });
  return { clientId: config.client_id, method };
}

/** Order 10: https, a non-empty `allowed_token_hosts`, and the endpoint's host in it (case-insensitive). */
export function allowedTokenEndpoint(config: Record<string, unknown>): URL {
  const refuse = (detail: string) => badRequest("provider_token_endpoint_not_allowed", detail, { detail });
  let url: URL;
  try {
    url = new URL(String(config.token_endpoint ?? ""));
  } catch {
    throw refuse("token_endpoint does not parse as a URL");
  }
  if (url.protocol !== "https:") throw refuse("token_endpoint must use https");
  if (url.username || url.password) throw refuse("token_endpoint must not carry credentials");
  const hosts = Array.isArray(config.allowed_token_hosts) ? config.allowed_token_hosts.filter(nonEmpty).map((h) => h.trim().toLowerCase()) : [];
  if (!hosts.length) throw refuse("the provider has no allowed_token_hosts");
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (!hosts.includes(host) && !hosts.includes(url.host.toLowerCase())) throw refuse(`token endpoint host ${host} is not in allowed_token_hosts`);
  return url;
}

export interface TokenSet {
  access_token: string;
  refresh_token: string | null;
  expires_at: Date | null;
}

/** RFC 6749 §2.3.1: both parts form-encoded before Basic. */
const basic = (id: string, secret: string) => "Basic " + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64");

/** Orders 11 and 12: the code exchange and the answer's shape. */
export async function exchangeCode(
  endpoint: URL,
  config: Record<string, unknown>,
  client: { clientId: string; method: ClientAuthMethod; secret: string | null },
  code: string,
  verifier: string,
  opts: PostOptions,
): Promise<TokenSet> {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries((config.token_params ?? {}) as Record<string, unknown>)) if (typeof v === "string") form.set(k, v);
  form.set("grant_type", "authorization_code");
  form.set("code", code);
  form.set("redirect_uri", String(config.redirect_uri ?? ""));
  form.set("code_verifier", verifier);
  const headers: Record<string, string> = {};
  if (client.method === "client_secret_basic") headers.authorization = basic(client.clientId, client.secret!);
  else {
    form.set("client_id", client.clientId);
    if (client.method === "client_secret_post") form.set("client_secret", client.secret!);
  }
  const failed = (detail: string) => new AppError(502, "provider_token_exchange_failed", detail, { detail });
  let res;
  try {
    res = await postForm(endpoint, form, headers, opts);
  } catch (err) {
    throw failed(err instanceof ExchangeFailure ? err.message : "transport failure");
  }
  if (res.status !== 200) throw failed(`the token endpoint answered ${res.status}`);
  const invalid = (detail: string) => new AppError(502, "provider_token_response_invalid", detail, { detail });
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(res.body.toString("utf8"));
  } catch {
    throw invalid("the token response is not JSON");
  }
  if (!parsed || typeof parsed !== "object" || typeof parsed.access_token !== "string" || !parsed.access_token) throw invalid("the token response has no access_token");
  const expiresIn = parsed.expires_in;
  return {
    access_token: parsed.access_token,
    refresh_token: typeof parsed.refresh_token === "string" && parsed.refresh_token ? parsed.refresh_token : null,
    expires_at: typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0 ? new Date(Date.now() + expiresIn * 1000) : null,
  };
}
