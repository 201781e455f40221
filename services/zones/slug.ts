// Zone slug rules: generated from the name, suffixed -2, -3… when taken (archived zones included).

export const SLUG_PATTERN = /^[a-z0-9-]+$/;

export function slugBase(name: string): string {
  const base = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return base || "zone";
}
