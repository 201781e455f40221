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
 * Where the cluster runs, written by `npm start` (and `npm run dev`) and read by `npm run repl`, so the
 * REPL joins the cluster that was started, not whatever its own defaults name.
 */
const RUN_SETTINGS = ["NAMESPACE", "NATS_URL"] as const;

function readEnvFile(file: string): Record<string, string> {
  const stored: Record<string, string> = {};
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) stored[m[1]!] = m[2]!;
    }
  }
  return stored;
}

function writeEnvFile(file: string, values: Record<string, string>): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, Object.entries(values).map(([k, v]) => `${k}=${v}`).join("\n") + "\n", { mode: 0o600 });
}

export interface DevEnvOptions {
  file?: string;
  /** Also take NAMESPACE and NATS_URL from the file when the environment lacks them (the REPL). */
  withRunSettings?: boolean;
}

/**
 * `npm start`/`npm test` run in dev mode when CARACAL_MODE is unset. Keys the environment does not
 * give are read from (or first written to) .local/dev.env, so all processes agree on them.
 * Returns the names that came from the file.
 */
export function applyDevEnv(env: NodeJS.ProcessEnv = process.env, opts: DevEnvOptions = {}): string[] {
  const file = opts.file ?? DEV_ENV_FILE;
  if (!env.CARACAL_MODE) env.CARACAL_MODE = "dev";
  if (env.CARACAL_MODE !== "dev") return [];
  const stored = readEnvFile(file);
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
  if (opts.withRunSettings) {
    for (const name of RUN_SETTINGS) {
      if (env[name] || !stored[name]) continue;
      env[name] = stored[name];
      fromFile.push(name);
    }
  }
  if (changed) writeEnvFile(file, stored);
  return fromFile;
}

/** The launcher records the namespace and NATS address it runs the cluster with (dev mode only). */
export function recordRunSettings(values: { NAMESPACE: string; NATS_URL: string }, env: NodeJS.ProcessEnv = process.env, file = DEV_ENV_FILE): void {
  if (env.CARACAL_MODE !== "dev") return;
  const stored = readEnvFile(file);
  if (stored.NAMESPACE === values.NAMESPACE && stored.NATS_URL === values.NATS_URL) return;
  writeEnvFile(file, { ...stored, ...values });
}
