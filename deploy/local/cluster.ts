// `npm start`: the gateway and every service as separate Node processes over NATS (or one with --single).
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { applyDevEnv, DEV_ENV_FILE, recordRunSettings } from "./dev-env";
import { loadConfig } from "../../shared/config";
import { processNames } from "./services";

const single = process.argv.includes("--single");
const fromFile = applyDevEnv();
// `npm run repl` reads these back, so it joins this cluster and not another one on the same NATS.
const settings = loadConfig();
recordRunSettings({ NAMESPACE: settings.namespace, NATS_URL: settings.natsUrl });
const port = process.env.PORT ?? "3000";
const children: ChildProcess[] = [];

function launch(names: string[]): void {
  // Built (`npm run build`, as npm start does): plain Node on the bundle, ~30 MB less per process than tsx.
  const entry = __filename.endsWith(".js") ? [join(__dirname, "service.js")] : ["--import", "tsx", join(__dirname, "service.ts")];
  const child = spawn(process.execPath, [...entry, names.join(",")], { stdio: "inherit", env: process.env });
  children.push(child);
  child.on("exit", (code, signal) => {
    if (!stopping) {
      console.error(`[cluster] ${names.join(",")} exited (${signal ?? code}); stopping the cluster`);
      void stop(1);
    }
  });
}

let stopping = false;
async function stop(code = 0): Promise<void> {
  stopping = true;
  for (const c of children) if (c.pid && c.exitCode === null) c.kill("SIGTERM");
  await Promise.all(children.map((c) => (c.exitCode !== null ? Promise.resolve() : new Promise((r) => c.once("exit", r)))));
  process.exit(code);
}
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());

if (single) launch(processNames());
else for (const name of processNames()) launch([name]);

const tokenSource = fromFile.includes("ADMIN_TOKEN") ? `ADMIN_TOKEN in ${DEV_ENV_FILE}` : "ADMIN_TOKEN from the environment";
console.log(`[cluster] ${children.length} process(es) starting; API on http://127.0.0.1:${port} (bootstrap admin token: ${tokenSource}; mode ${process.env.CARACAL_MODE})`);
