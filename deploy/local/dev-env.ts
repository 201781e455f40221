// Development secrets: generated once into .local/dev.env and shared by every local process.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";

/** The checkout this code runs from (also when bundled into dist/). */
export const REPO_ROOT = (() => {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, "package.json"))) return dir;
  return process.cwd();
})();
export const DEV_ENV_FILE = join(REPO_ROOT, ".local", "dev.env");

const GENERATED = {
  ADMIN_TOKEN: () => "cat_" + randomBytes(32).toString("base64url"),
  STREAMS_HMAC_KEY: () => randomBytes(32).toString("hex"),
  AUDIT_HMAC_KEY: () => randomBytes(32).toString("hex"),
  ZONE_KEK: () => randomBytes(32).toString("hex"),
} as const;

/**
 * `npm start`/`npm test` run in dev mode when CARACAL_MODE is unset. Keys the environment does not
 * give are read from (or first written to) .local/dev.env, so all processes agree on them.
 * Returns the names that came from the file.
 */
export function applyDevEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  if (!env.CARACAL_MODE) env.CARACAL_MODE = "dev";
  if (env.CARACAL_MODE !== "dev") return [];
  const stored: Record<string, string> = {};
  if (existsSync(DEV_ENV_FILE)) {
    for (const line of readFileSync(DEV_ENV_FILE, "utf8").split("\n")) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) stored[m[1]!] = m[2]!;
    }
  }
  let changed = false;
  const fromFile: string[] = [];
  for (const [name, make] of Object.entries(GENERATED)) {
    if (env[name]) continue;
    if (!stored[name]) {
      stored[name] = make();
      changed = true;
    }
    env[name] = stored[name];
    fromFile.push(name);
  }
  if (changed) {
    mkdirSync(join(REPO_ROOT, ".local"), { recursive: true });
    writeFileSync(DEV_ENV_FILE, Object.entries(stored).map(([k, v]) => `${k}=${v}`).join("\n") + "\n", { mode: 0o600 });
  }
  return fromFile;
}
