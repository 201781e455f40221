// Provider config rules per kind (reference-core §10.3): public keys kept, secret keys split out.
import { badRequest } from "../../shared/errors";

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
}

const fail = (message: string) => badRequest("invalid_provider_config", message);

function nonBlank(v: unknown, key: string): string {
  if (typeof v !== "string" || !v.trim()) throw fail(`${key} must be a non-empty string`);
  return v.trim();
}

function httpsUrl(v: unknown, key: string): string {
  const s = nonBlank(v, key);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw fail(`${key} must be an absolute https URL`);
  }
  if (u.protocol !== "https:") throw fail(`${key} must use https`);
  if (u.username || u.password) throw fail(`${key} must not carry credentials`);
  return s;
}

function stringList(v: unknown, key: string, hostnames = false): string[] {
  if (!Array.isArray(v) || v.length === 0) throw fail(`${key} must be a non-empty list`);
  return v.map((x) => {
    const s = nonBlank(x, key);
    if (!hostnames) return s;
    const h = s.toLowerCase();
    if (h.includes("://") || h.includes("..") || !HOSTNAME.test(h)) throw fail(`${key} entries must be DNS host names`);
    return h;
  });
}

function paramMap(v: unknown, key: string, reserved: string[]): Record<string, string> {
  if (!v || typeof v !== "object" || Array.isArray(v)) throw fail(`${key} must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(v as Record<string, unknown>)) {
    if (!PARAM_NAME.test(name)) throw fail(`${key} has an invalid parameter name: ${name}`);
    if (reserved.includes(name.toLowerCase())) throw fail(`${key} must not set the reserved parameter ${name}`);
    out[name] = nonBlank(value, `${key}.${name}`);
  }
  return out;
}

/**
 * Validates `config_json` for a kind and splits it. `secretsRequired` is false for a config-only PATCH,
 * where stored secrets (`storedSecretKeys`) may satisfy what the auth method needs.
 */
export function validateProviderConfig(kind: ProviderKind, raw: unknown, secretsRequired: boolean, storedSecretKeys: string[] = []): SplitConfig {
  if (raw === undefined) raw = {};
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw fail("config_json must be an object");
  const config = raw as Record<string, unknown>;
  const allowed = [...PUBLIC_KEYS[kind], ...SECRET_KEYS[kind]];
  const unsupported = Object.keys(config).filter((k) => !allowed.includes(k));
  if (unsupported.length) throw fail(`config_json for ${kind} has unsupported keys: ${unsupported.sort().join(", ")}`);

  const secrets: Record<string, string> = {};
  for (const key of SECRET_KEYS[kind]) {
    if (config[key] === undefined) continue;
    if (typeof config[key] !== "string" || !(config[key] as string).length) throw fail(`${key} must be a non-empty string`);
    secrets[key] = config[key] as string;
  }
  const has = (key: string) => key in secrets || (!secretsRequired && storedSecretKeys.includes(key));
  const pub: Record<string, unknown> = {};

  // Shared keys.
  if (config.auth_header !== undefined) {
    const h = nonBlank(config.auth_header, "auth_header");
    if (!HTTP_TOKEN.test(h)) throw fail("auth_header must be an HTTP token");
    pub.auth_header = h;
  }
  if (config.auth_scheme !== undefined) {
    const s = nonBlank(config.auth_scheme, "auth_scheme");
    if (!AUTH_SCHEME.test(s)) throw fail("auth_scheme must match ^[A-Za-z][A-Za-z0-9-]*$");
    pub.auth_scheme = s;
  }
  for (const flag of ["forward_caracal_identity", "allow_runtime_injection"]) {
    if (config[flag] === undefined) continue;
    if (typeof config[flag] !== "boolean") throw fail(`${flag} must be a boolean`);
    pub[flag] = config[flag];
  }

  switch (kind) {
    case "none":
    case "caracal_mandate":
      break;
    case "api_key": {
      const location = config.auth_location === undefined ? "header" : config.auth_location;
      if (location !== "header" && location !== "query") throw fail("auth_location must be header or query");
      pub.auth_location = location;
      if (location === "header") {
        const h = nonBlank(config.header_name, "header_name");
        if (!HTTP_TOKEN.test(h)) throw fail("header_name must be an HTTP token");
        pub.header_name = h;
        if (config.query_param_name !== undefined) throw fail("query_param_name is only for auth_location query");
      } else {
        const q = nonBlank(config.query_param_name, "query_param_name");
        if (!PARAM_NAME.test(q)) throw fail("query_param_name must match [A-Za-z0-9._~-]+");
        pub.query_param_name = q;
        if (config.auth_scheme !== undefined) throw fail("auth_scheme is not allowed with auth_location query");
        if (config.header_name !== undefined) throw fail("header_name is only for auth_location header");
      }
      if (secretsRequired && !has("api_key")) throw fail("api_key is required");
      break;
    }
    case "bearer_token":
      if (config.allowed_token_hosts !== undefined) pub.allowed_token_hosts = stringList(config.allowed_token_hosts, "allowed_token_hosts", true);
      if (secretsRequired && !has("bearer_token")) throw fail("bearer_token is required");
      break;
    case "oauth2_client_credentials":
    case "oauth2_authorization_code": {
      pub.token_endpoint = httpsUrl(config.token_endpoint, "token_endpoint");
      pub.client_id = nonBlank(config.client_id, "client_id");
      pub.allowed_token_hosts = stringList(config.allowed_token_hosts, "allowed_token_hosts");
      if (config.scopes !== undefined) pub.scopes = stringList(config.scopes, "scopes");
      if (config.token_params !== undefined) pub.token_params = paramMap(config.token_params, "token_params", RESERVED_TOKEN_PARAMS);
      const method = config.client_auth_method === undefined ? "client_secret_basic" : config.client_auth_method;
      const methods = kind === "oauth2_client_credentials" ? ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] : ["client_secret_basic", "client_secret_post", "none"];
      if (typeof method !== "string" || !methods.includes(method)) throw fail(`client_auth_method must be one of ${methods.join(", ")}`);
      pub.client_auth_method = method;
      if (kind === "oauth2_client_credentials") {
        for (const key of ["audience", "resource", "key_id"]) if (config[key] !== undefined) pub[key] = nonBlank(config[key], key);
        if (method === "private_key_jwt") {
          if ("client_secret" in secrets) throw fail("client_secret is not allowed with private_key_jwt");
          if (!has("private_key")) throw fail("private_key is required with private_key_jwt");
        } else {
          if ("private_key" in secrets) throw fail("private_key is only for private_key_jwt");
          if (config.key_id !== undefined) throw fail("key_id is only for private_key_jwt");
          if (method !== "none" && !has("client_secret")) throw fail("client_secret is required");
        }
      } else {
        pub.authorization_endpoint = httpsUrl(config.authorization_endpoint, "authorization_endpoint");
        const redirect = nonBlank(config.redirect_uri, "redirect_uri");
        let u: URL;
        try {
          u = new URL(redirect);
        } catch {
          throw fail("redirect_uri must be an absolute URI");
        }
        if ((u.protocol === "http:" || u.protocol === "https:") && !u.host) throw fail("redirect_uri needs a host");
        pub.redirect_uri = redirect;
        if (config.authorization_params !== undefined) pub.authorization_params = paramMap(config.authorization_params, "authorization_params", RESERVED_AUTHORIZATION_PARAMS);
        if (method !== "none" && !has("client_secret")) throw fail("client_secret is required");
      }
      break;
    }
  }
  return { publicConfig: pub, secrets };
}

export const PROVIDER_IDENTIFIER = /^provider:\/\/[a-z0-9]+(-[a-z0-9]+)*$/;

/** `provider://` + slug of the name (a leading provider:// dropped), or of "<kind> provider". */
export function providerIdentifierBase(name: string | undefined, kind: string): string {
  const source = (name ?? `${kind} provider`).replace(/^provider:\/\//i, "");
  const slug = source.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return `provider://${slug || "provider"}`;
}
