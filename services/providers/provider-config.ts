// Provider config rules per kind (reference-core §10.3): public keys kept, secret keys split out.
import type { Issue } from "../../shared/errors";

export const PROVIDER_KINDS = ["none", "caracal_mandate", "oauth2_authorization_code", "oauth2_client_credentials", "api_key", "bearer_token"] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

const SHARED = ["auth_header", "auth_scheme", "forward_caracal_identity", "allow_runtime_injection"];
const PUBLIC_KEYS: Record<ProviderKind, string[]> = {
  none: [],
  caracal_mandate: [],
  api_key: ["auth_location", "header_name", "query_param_name", "auth_scheme", "forward_caracal_identity", "allow_runtime_injection"],
  bearer_token: ["allowed_token_hosts", ...SHARED],
  oauth2_client_credentials: ["token_endpoint", "client_id", "client_auth_method", "scopes", "audience", "resource", "allowed_token_hosts", "token_params", "key_id", ...SHARED],
  oauth2_authorization_code: ["authorization_endpoint", "token_endpoint", "redirect_uri", "client_id", "client_auth_method", "scopes", "allowed_token_hosts", "authorization_params", "token_params", ...SHARED],
};
const SECRET_KEYS: Record<ProviderKind, string[]> = {
  none: [],
  caracal_mandate: [],
  api_key: ["api_key"],
  bearer_token: ["bearer_token"],
  oauth2_client_credentials: ["client_secret", "private_key"],
  oauth2_authorization_code: ["client_secret"],
};

const RESERVED_TOKEN_PARAMS = ["client_assertion", "client_assertion_type", "client_id", "client_secret", "code", "code_verifier", "grant_type", "redirect_uri", "refresh_token", "scope"];
const RESERVED_AUTHORIZATION_PARAMS = ["client_id", "code_challenge", "code_challenge_method", "redirect_uri", "response_type", "scope", "state"];
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const AUTH_SCHEME = /^[A-Za-z][A-Za-z0-9-]*$/;
const PARAM_NAME = /^[A-Za-z0-9._~-]+$/;
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export interface SplitConfig {
  publicConfig: Record<string, unknown>;
  secrets: Record<string, string>;
  /** Every rule the config broke (paths under `config_json`), empty when it is valid. */
  issues: Issue[];
}

/** Caps inside config_json (the whole object is capped at 64 KiB by the body schema). */
const MAX_TEXT = 2048;
const MAX_SECRET = 16 * 1024;
const MAX_LIST = 256;
const MAX_PARAMS = 64;

/**
 * Validates `config_json` for a kind and splits it, reporting every broken rule (code
 * `invalid_provider_config`) rather than the first. `secretsRequired` is false for a config-only PATCH,
 * where stored secrets (`storedSecretKeys`) may satisfy what the auth method needs.
 */
export function validateProviderConfig(kind: ProviderKind, raw: unknown, secretsRequired: boolean, storedSecretKeys: string[] = []): SplitConfig {
  const issues: Issue[] = [];
  const secrets: Record<string, string> = {};
  const pub: Record<string, unknown> = {};
  const fail = (key: string | null, message: string): undefined => {
    issues.push({ path: key ? ["config_json", ...key.split(".")] : ["config_json"], message });
    return undefined;
  };
  if (raw === undefined) raw = {};
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    fail(null, "config_json must be an object");
    return { publicConfig: pub, secrets, issues };
  }
  const config = raw as Record<string, unknown>;

  const nonBlank = (v: unknown, key: string, max = MAX_TEXT): string | undefined => {
    if (typeof v !== "string" || !v.trim()) return fail(key, `${key} must be a non-empty string`);
    if (v.length > max) return fail(key, `${key} must be at most ${max} characters`);
    return v.trim();
  };
  const httpsUrl = (v: unknown, key: string): string | undefined => {
    const s = nonBlank(v, key);
    if (s === undefined) return undefined;
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return fail(key, `${key} must be an absolute https URL`);
    }
    if (u.protocol !== "https:") return fail(key, `${key} must use https`);
    if (u.username || u.password) return fail(key, `${key} must not carry credentials`);
    return s;
  };
  const stringList = (v: unknown, key: string, hostnames = false): string[] | undefined => {
    if (!Array.isArray(v) || v.length === 0) return fail(key, `${key} must be a non-empty list`);
    if (v.length > MAX_LIST) return fail(key, `${key} must have at most ${MAX_LIST} entries`);
    const out: string[] = [];
    for (const x of v) {
      const s = nonBlank(x, key, hostnames ? 253 : key === "scopes" ? 128 : MAX_TEXT);
      if (s === undefined) return undefined;
      const h = s.toLowerCase();
      if (hostnames && (h.includes("://") || h.includes("..") || !HOSTNAME.test(h))) return fail(key, `${key} entries must be DNS host names`);
      out.push(hostnames ? h : s);
    }
    return out;
  };
  const paramMap = (v: unknown, key: string, reserved: string[]): Record<string, string> | undefined => {
    if (!v || typeof v !== "object" || Array.isArray(v)) return fail(key, `${key} must be an object of strings`);
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length > MAX_PARAMS) return fail(key, `${key} must have at most ${MAX_PARAMS} entries`);
    const out: Record<string, string> = {};
    for (const [name, value] of entries) {
      if (!PARAM_NAME.test(name) || name.length > 128) return fail(key, `${key} has an invalid parameter name: ${name.slice(0, 128)}`);
      if (reserved.includes(name.toLowerCase())) return fail(key, `${key} must not set the reserved parameter ${name}`);
      const s = nonBlank(value, `${key}.${name}`);
      if (s === undefined) return undefined;
      out[name] = s;
    }
    return out;
  };
  const put = (key: string, value: unknown) => {
    if (value !== undefined) pub[key] = value;
  };

  const allowed = [...PUBLIC_KEYS[kind], ...SECRET_KEYS[kind]];
  const unsupported = Object.keys(config).filter((k) => !allowed.includes(k));
  if (unsupported.length) fail(null, `config_json for ${kind} has unsupported keys: ${unsupported.sort().join(", ").slice(0, 500)}`);

  for (const key of SECRET_KEYS[kind]) {
    if (config[key] === undefined) continue;
    if (typeof config[key] !== "string" || !(config[key] as string).length) fail(key, `${key} must be a non-empty string`);
    else if ((config[key] as string).length > MAX_SECRET) fail(key, `${key} must be at most ${MAX_SECRET} characters`);
    else secrets[key] = config[key] as string;
  }
  const has = (key: string) => key in secrets || (!secretsRequired && storedSecretKeys.includes(key));

  // Shared keys.
  if (config.auth_header !== undefined) {
    const h = nonBlank(config.auth_header, "auth_header");
    if (h !== undefined && !HTTP_TOKEN.test(h)) fail("auth_header", "auth_header must be an HTTP token");
    else put("auth_header", h);
  }
  if (config.auth_scheme !== undefined) {
    const sch = nonBlank(config.auth_scheme, "auth_scheme");
    if (sch !== undefined && !AUTH_SCHEME.test(sch)) fail("auth_scheme", "auth_scheme must match ^[A-Za-z][A-Za-z0-9-]*$");
    else put("auth_scheme", sch);
  }
  for (const flag of ["forward_caracal_identity", "allow_runtime_injection"]) {
    if (config[flag] === undefined) continue;
    if (typeof config[flag] !== "boolean") fail(flag, `${flag} must be a boolean`);
    else pub[flag] = config[flag];
  }

  switch (kind) {
    case "none":
    case "caracal_mandate":
      break;
    case "api_key": {
      const location = config.auth_location === undefined ? "header" : config.auth_location;
      if (location !== "header" && location !== "query") {
        fail("auth_location", "auth_location must be header or query");
      } else {
        pub.auth_location = location;
        if (location === "header") {
          const h = nonBlank(config.header_name, "header_name");
          if (h !== undefined && !HTTP_TOKEN.test(h)) fail("header_name", "header_name must be an HTTP token");
          else put("header_name", h);
          if (config.query_param_name !== undefined) fail("query_param_name", "query_param_name is only for auth_location query");
        } else {
          const q = nonBlank(config.query_param_name, "query_param_name");
          if (q !== undefined && !PARAM_NAME.test(q)) fail("query_param_name", "query_param_name must match [A-Za-z0-9._~-]+");
          else put("query_param_name", q);
          if (config.auth_scheme !== undefined) fail("auth_scheme", "auth_scheme is not allowed with auth_location query");
          if (config.header_name !== undefined) fail("header_name", "header_name is only for auth_location header");
        }
      }
      if (secretsRequired && !has("api_key")) fail("api_key", "api_key is required");
      break;
    }
    case "bearer_token":
      if (config.allowed_token_hosts !== undefined) put("allowed_token_hosts", stringList(config.allowed_token_hosts, "allowed_token_hosts", true));
      if (secretsRequired && !has("bearer_token")) fail("bearer_token", "bearer_token is required");
      break;
    case "oauth2_client_credentials":
    case "oauth2_authorization_code": {
      put("token_endpoint", httpsUrl(config.token_endpoint, "token_endpoint"));
      put("client_id", nonBlank(config.client_id, "client_id"));
      put("allowed_token_hosts", stringList(config.allowed_token_hosts, "allowed_token_hosts"));
      if (config.scopes !== undefined) put("scopes", stringList(config.scopes, "scopes"));
      if (config.token_params !== undefined) put("token_params", paramMap(config.token_params, "token_params", RESERVED_TOKEN_PARAMS));
      const method = config.client_auth_method === undefined ? "client_secret_basic" : config.client_auth_method;
      const methods = kind === "oauth2_client_credentials" ? ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] : ["client_secret_basic", "client_secret_post", "none"];
      const methodOk = typeof method === "string" && methods.includes(method);
      if (!methodOk) fail("client_auth_method", `client_auth_method must be one of ${methods.join(", ")}`);
      else pub.client_auth_method = method;
      if (kind === "oauth2_client_credentials") {
        for (const key of ["audience", "resource", "key_id"]) if (config[key] !== undefined) put(key, nonBlank(config[key], key));
        if (methodOk && method === "private_key_jwt") {
          if ("client_secret" in secrets) fail("client_secret", "client_secret is not allowed with private_key_jwt");
          if (!has("private_key")) fail("private_key", "private_key is required with private_key_jwt");
        } else if (methodOk) {
          if ("private_key" in secrets) fail("private_key", "private_key is only for private_key_jwt");
          if (config.key_id !== undefined) fail("key_id", "key_id is only for private_key_jwt");
          if (method !== "none" && !has("client_secret")) fail("client_secret", "client_secret is required");
        }
      } else {
        put("authorization_endpoint", httpsUrl(config.authorization_endpoint, "authorization_endpoint"));
        const redirect = nonBlank(config.redirect_uri, "redirect_uri");
        if (redirect !== undefined) {
          let u: URL | null = null;
          try {
            u = new URL(redirect);
          } catch {
            fail("redirect_uri", "redirect_uri must be an absolute URI");
          }
          if (u && (u.protocol === "http:" || u.protocol === "https:") && !u.host) fail("redirect_uri", "redirect_uri needs a host");
          else if (u) pub.redirect_uri = redirect;
        }
        if (config.authorization_params !== undefined) put("authorization_params", paramMap(config.authorization_params, "authorization_params", RESERVED_AUTHORIZATION_PARAMS));
        if (methodOk && method !== "none" && !has("client_secret")) fail("client_secret", "client_secret is required");
      }
      break;
    }
  }
  return { publicConfig: pub, secrets, issues };
}

export const PROVIDER_IDENTIFIER = /^provider:\/\/[a-z0-9]+(-[a-z0-9]+)*$/;

/** `provider://` + slug of the name (a leading provider:// dropped), or of "<kind> provider". */
export function providerIdentifierBase(name: string | undefined, kind: string): string {
  const source = (name ?? `${kind} provider`).replace(/^provider:\/\//i, "");
  const slug = source.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return `provider://${slug || "provider"}`;
}
