// Client secrets: generated once, stored only as Argon2id in the token service's format.
import { randomBytes, timingSafeEqual } from "node:crypto";
import argon2 from "argon2";

/** 64 MiB, 3 passes, 2 lanes, 32-byte output: what the token service verifies. */
const PARAMS = { type: argon2.argon2id, memoryCost: 64 * 1024, timeCost: 3, parallelism: 2, hashLength: 32, raw: true } as const;

export const newClientSecret = (): string => "cs_" + randomBytes(32).toString("base64url");

const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");

/** `argon2id$<salt>$<hash>`, both standard base64 without padding. */
export async function hashClientSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await argon2.hash(secret, { ...PARAMS, salt });
  return `argon2id$${b64(salt)}$${b64(hash)}`;
}

export async function verifyClientSecret(stored: string, secret: string): Promise<boolean> {
  const [kind, saltB64, hashB64] = stored.split("$");
  if (kind !== "argon2id" || !saltB64 || !hashB64) return false;
  const expected = Buffer.from(hashB64, "base64");
  const actual = await argon2.hash(secret, { ...PARAMS, salt: Buffer.from(saltB64, "base64") });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
