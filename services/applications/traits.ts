// Application traits (reference-core §9.3): free-form labels, privileged namespaces for global actors only.
import { forbidden } from "../../shared/errors";
import type { Actor } from "../../shared/actor";

const TRAIT_PATTERN = /^[A-Za-z][A-Za-z0-9._:-]*$/;
const MAX_TRAITS = 32;
const PRIVILEGED_NAMESPACES = new Set(["control", "caracal.sys"]);

/** Every trait failure is 403, in the reference's order: count, shape, duplicates, privilege. */
export function checkTraits(traits: string[], actor: Actor | undefined): void {
  if (traits.length > MAX_TRAITS) throw forbidden("trait_count_exceeded", `at most ${MAX_TRAITS} traits`);
  for (const t of traits) {
    if (t.length < 1 || t.length > 128 || !TRAIT_PATTERN.test(t)) throw forbidden("trait_invalid", `trait "${t.slice(0, 128)}" must match ${TRAIT_PATTERN.source} and be 1..128 characters`);
  }
  const seen = new Set<string>();
  for (const t of traits) {
    if (seen.has(t)) throw forbidden("trait_duplicate", `trait "${t}" is listed twice`);
    seen.add(t);
  }
  if (actor?.scope !== "global") {
    const privileged = traits.find((t) => PRIVILEGED_NAMESPACES.has(t.split(":")[0]!));
    if (privileged) throw forbidden("trait_forbidden", `only global tokens may set the "${privileged.split(":")[0]}" trait namespace`);
  }
}
