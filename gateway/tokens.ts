// Admin token material: generation, the SHA-256 lookup digest, Argon2id hashes and Console derivations.
import { createHash, createHmac, randomBytes } from "node:crypto";
import argon2 from "argon2";

export const TOKEN_MAX_LENGTH = 4096;

/** Argon2id at 64 MiB, 3 passes, 2 lanes: the reference's cost; verified once per token per cache window. */
const ARGON2 = { type: argon2.argon2id, memoryCost: 64 * 1024, timeCost: 3, parallelism: 2, hashLength: 32 } as const;

export const newAdminToken = (): string => "cat_" + randomBytes(32).toString("base64url");

export const lookupDigest = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex");

export const hashToken = (token: string): Promise<string> => argon2.hash(token, ARGON2);

export async function verifyTokenHash(hash: string, token: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, token);
  } catch {
    return false;
  }
}

/** Console tokens are derived from the bootstrap token, so rotating it rotates them. */
export const CONSOLE_LABELS = {
  read: "caracal:console:read-only:v1",
  write: "caracal:console:write:v1",
} as const;

export const deriveConsoleToken = (bootstrap: string, label: string): string =>
  "cat_" + createHmac("sha256", bootstrap).update(label, "utf8").digest("base64url");

/** `Authorization: Bearer <token>` exactly: one space, then visible characters only; anything else is no credential. */
export function bearerToken(header: string | undefined): string | null {
  if (!header || !header.startsWith("Bearer ")) return null;
  const token = header.slice(7);
  if (!/^[\x21-\x7E]+$/.test(token) || token.length > TOKEN_MAX_LENGTH) return null;
  return token;
}
