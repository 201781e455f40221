// Zone slug rules: generated from the name, suffixed -2, -3… when taken (archived zones included).

export const SLUG_PATTERN = /^[a-z0-9-]+$/;

export function slugBase(name: string): string {
  const base = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return base || "zone";
}

/** The first free candidate given the slugs already taken that start with `base`. */
export function nextFreeSlug(base: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  if (!used.has(base)) return base;
  for (let n = 2; ; n++) if (!used.has(`${base}-${n}`)) return `${base}-${n}`;
}

export const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
