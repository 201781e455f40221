// Redaction of secret-like keys in metadata and payloads shown to readers (reference-ops §1.3).
const SECRET_LIKE = new Set([
  "password", "passwd", "secret", "token", "access_token", "refresh_token", "id_token", "api_key", "apikey",
  "authorization", "cookie", "set_cookie", "client_secret", "private_key", "session", "session_id", "assertion",
]);

export const REDACTED = "[redacted]";

/** A copy where every value under a secret-like key (any depth, any case) is "[redacted]". */
export function redact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => redact(v)) as T;
  if (value && typeof value === "object" && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = SECRET_LIKE.has(k.toLowerCase()) ? REDACTED : redact(v);
    return out as T;
  }
  return value;
}
