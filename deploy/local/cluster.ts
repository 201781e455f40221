// `npm start`: the gateway and every service as separate Node processes over NATS (or one with --single),
// supervised: a process that exits is started again after a backoff; only SIGINT/SIGTERM stop them all.
//
// Options: --single (one process), --only gateway,zones (a subset; also CARACAL_PROCESSES).
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { applyDevEnv, DEV_ENV_FILE, recordRunSettings } from "./dev-env";
import { loadConfig } from "../../shared/config";
import { processNames } from "./services";

/** First restart delay; doubles per crash in a row up to MAX, and starts over once a process has run STABLE_MS. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 30_000;
const STABLE_MS = 30_000;
/** Longest a process may take to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 30_000;

const args = process.argv.slice(2);
const single = args.includes("--single");
const onlyArg = args.includes("--only") ? args[args.indexOf("--only") + 1] : process.env.CARACAL_PROCESSES;
const fromFile = applyDevEnv();
// `npm run repl` reads these back, so it joins this cluster and not another one on the same NATS.
const settings = loadConfig();
recordRunSettings({ NAMESPACE: settings.namespace, NATS_URL: settings.natsUrl });
const port = process.env.PORT ?? "3000";

interface Supervised {
  label: string;
  names: string[];
  child: ChildProcess | null;
  startedAt: number;
  crashes: number;
  restartTimer: NodeJS.Timeout | null;
}

const log = (msg: string) => console.log(`[cluster] ${new Date().toISOString()} ${msg}`);
const supervised: Supervised[] = [];
let stopping = false;

function launch(s: Supervised): void {
  // Built (`npm run build`, as npm start does): plain Node on the bundle, ~30 MB less per process than tsx.
  const entry = __filename.endsWith(".js") ? [join(__dirname, "service.js")] : ["--import", "tsx", join(__dirname, "service.ts")];
  const child = spawn(process.execPath, [...entry, s.names.join(",")], { stdio: "inherit", env: process.env });
  s.child = child;
  s.startedAt = Date.now();
  log(`${s.label} started (pid ${child.pid})`);
  child.on("exit", (code, signal) => {
    s.child = null;
    if (stopping) return;
    const ranMs = Date.now() - s.startedAt;
    s.crashes = ranMs >= STABLE_MS ? 1 : s.crashes + 1;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (s.crashes - 1));
    log(`${s.label} (pid ${child.pid}) exited (${signal ?? `code ${code}`}) after ${(ranMs / 1000).toFixed(1)} s; restarting in ${delay} ms (crash ${s.crashes} in a row)`);
    s.restartTimer = setTimeout(() => {
      s.restartTimer = null;
      if (!stopping) launch(s);
    }, delay);
  });
}

/** Stops one group: SIGTERM, then SIGKILL if it has not exited within the grace time. */
function stopOne(s: Supervised): Promise<void> {
  if (s.restartTimer) clearTimeout(s.restartTimer);
  const child = s.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => {
      log(`${s.label} (pid ${child.pid}) did not stop in ${STOP_GRACE_MS} ms; killing it`);
      child.kill("SIGKILL");
    }, STOP_GRACE_MS);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** The gateway stops first (it answers what is in flight while the services still run), then the rest. */
async function stopAll(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping ${supervised.map((s) => s.label).join(", ")}`);
  const gateway = supervised.filter((s) => s.names.includes("gateway") && s.names.length === 1);
  await Promise.all(gateway.map(stopOne));
  await Promise.all(supervised.filter((s) => !gateway.includes(s)).map(stopOne));
  log("stopped");
  process.exit(0);
}
process.on("SIGINT", () => void stopAll("SIGINT"));
process.on("SIGTERM", () => void stopAll("SIGTERM"));

const wanted = onlyArg ? onlyArg.split(",").map((n) => n.trim()).filter(Boolean) : processNames();
const unknown = wanted.filter((n) => !processNames().includes(n));
if (unknown.length) {
  console.error(`[cluster] unknown process(es): ${unknown.join(", ")}; known: ${processNames().join(", ")}`);
  process.exit(2);
}
const groups = single ? [wanted] : wanted.map((n) => [n]);
for (const names of groups) supervised.push({ label: names.join(","), names, child: null, startedAt: 0, crashes: 0, restartTimer: null });
for (const s of supervised) launch(s);

const tokenSource = fromFile.includes("ADMIN_TOKEN") ? `ADMIN_TOKEN in ${DEV_ENV_FILE}` : "ADMIN_TOKEN from the environment";
log(`${supervised.length} process(es) starting; API on http://127.0.0.1:${port} (bootstrap admin token: ${tokenSource}; mode ${process.env.CARACAL_MODE})`);
