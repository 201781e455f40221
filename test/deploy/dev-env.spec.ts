// .local/dev.env: the secrets every local process shares, and the namespace `npm start` ran with, which
// `npm run repl` reads back so it joins that cluster.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyDevEnv, recordRunSettings } from "../../deploy/local/dev-env";

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "caracal-devenv-"));
  file = join(dir, ".local", "dev.env");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("the REPL takes the namespace and NATS address npm start recorded; the environment still wins", () => {
  const start: NodeJS.ProcessEnv = { NAMESPACE: "mine" };
  applyDevEnv(start, { file });
  recordRunSettings({ NAMESPACE: "mine", NATS_URL: "nats://127.0.0.1:4222" }, start, file);

  const repl: NodeJS.ProcessEnv = {};
  const fromFile = applyDevEnv(repl, { file, withRunSettings: true });
  expect(repl.NAMESPACE).toBe("mine");
  expect(repl.NATS_URL).toBe("nats://127.0.0.1:4222");
  expect(fromFile).toEqual(expect.arrayContaining(["NAMESPACE", "ADMIN_TOKEN"]));
  expect(repl.ADMIN_TOKEN).toBe(start.ADMIN_TOKEN);

  const explicit: NodeJS.ProcessEnv = { NAMESPACE: "other" };
  applyDevEnv(explicit, { file, withRunSettings: true });
  expect(explicit.NAMESPACE).toBe("other");
});

test("service processes do not take the recorded namespace (the launcher passes its own environment down)", () => {
  recordRunSettings({ NAMESPACE: "recorded", NATS_URL: "nats://127.0.0.1:4222" }, { CARACAL_MODE: "dev" }, file);
  const service: NodeJS.ProcessEnv = {};
  applyDevEnv(service, { file });
  expect(service.NAMESPACE).toBeUndefined();
  // Recording keeps the generated secrets of the file.
  const first: NodeJS.ProcessEnv = {};
  applyDevEnv(first, { file });
  recordRunSettings({ NAMESPACE: "again", NATS_URL: "nats://127.0.0.1:4222" }, first, file);
  expect(readFileSync(file, "utf8")).toContain(`ADMIN_TOKEN=${first.ADMIN_TOKEN}`);
  expect(readFileSync(file, "utf8")).toContain("NAMESPACE=again");
});

test("release mode neither reads nor writes the file", () => {
  const env: NodeJS.ProcessEnv = { CARACAL_MODE: "stable" };
  expect(applyDevEnv(env, { file, withRunSettings: true })).toEqual([]);
  recordRunSettings({ NAMESPACE: "x", NATS_URL: "nats://127.0.0.1:4222" }, env, file);
  expect(() => readFileSync(file)).toThrow();
});
