// Identifiers: UUIDv7 for every stored object, and the path-id shape the API accepts.
import { createHash } from "node:crypto";
import { v7 } from "uuid";

export const newId = (): string => v7();

/**
 * A UUIDv7 that is the same every time for the same time and seed: a retried request (Idempotency-Key)
 * derives the ids of what it creates from its key, so a retry finds what an earlier attempt stored.
 */
export const seededId = (msecs: number, seed: string): string => v7({ msecs, random: createHash("sha256").update(seed).digest().subarray(0, 16) });

/** Path ids (`:zoneId`, `:id`) after URL decoding. */
export const PATH_ID_PATTERN = /^[A-Za-z0-9_.\-:]{1,128}$/;

/** fastest-validator rule for one path id; failures map to 400 `invalid_params`. */
export const pathId = { type: "string", pattern: PATH_ID_PATTERN } as const;

export const isoNow = (): string => new Date().toISOString();
