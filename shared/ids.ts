// Identifiers: UUIDv7 for every stored object, and the path-id shape the API accepts.
import { v7 } from "uuid";

export const newId = (): string => v7();

/** Path ids (`:zoneId`, `:id`) after URL decoding. */
export const PATH_ID_PATTERN = /^[A-Za-z0-9_.\-:]{1,128}$/;

/** fastest-validator rule for one path id; failures map to 400 `invalid_params`. */
export const pathId = { type: "string", pattern: PATH_ID_PATTERN } as const;

export const isoNow = (): string => new Date().toISOString();
