// The reserved `caracal.sys` namespace (reference-core §4): only the bootstrap identity may use it.
import { AppError } from "./errors";
import { isBootstrap, type Actor } from "./actor";

export const RESERVED_PREFIXES = {
  zoneName: "caracal.sys/",
  zoneSlug: "caracal-sys-",
  applicationName: "caracal.sys/",
  resourceIdentifier: "caracal-sys://",
  providerIdentifier: "provider://caracal-sys-",
  policyName: "caracal.sys/",
} as const;

export const isReserved = (value: string | undefined | null, prefix: string): boolean =>
  typeof value === "string" && value.trim().toLowerCase().startsWith(prefix);

/** 409 `reserved_namespace` when a non-bootstrap actor uses a reserved value. */
export function assertNotReserved(actor: Actor | undefined, value: string | undefined | null, prefix: string): void {
  if (isReserved(value, prefix) && !isBootstrap(actor)) {
    throw new AppError(409, "reserved_namespace", "the 'caracal.sys' namespace is reserved for Caracal internal systems");
  }
}
