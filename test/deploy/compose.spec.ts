// The deployment files agree with the code: a compose service (and a k8s Deployment) per Moleculer service.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CORE_SCHEMA, load, loadAll, mergeTag } from "js-yaml";

const ROOT = join(__dirname, "..", "..");
// docker-compose.yml shares its common settings through YAML merge keys (`<<: *app`).
const SCHEMA = CORE_SCHEMA.withTags(mergeTag);

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, unknown> | string[];
  ports?: (string | number | { target?: number; published?: number | string })[];
  healthcheck?: { test?: unknown };
}

function readYaml(path: string): unknown {
  return load(readFileSync(path, "utf8"), { schema: SCHEMA });
}

/** environment as a map, whichever form (mapping or KEY=value list) the file uses. */
function envOf(svc: ComposeService): Record<string, string> {
  const env = svc.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((line) => {
      const i = line.indexOf("=");
      return i < 0 ? [line, ""] : [line.slice(0, i), line.slice(i + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? "" : String(v)]));
}

/** Host ports a service publishes, from short ("3000:3000", "127.0.0.1:3000:3000") or long syntax. */
function publishedPorts(svc: ComposeService): number[] {
  return (svc.ports ?? []).flatMap((p) => {
    if (typeof p === "object") return p.published === undefined ? [] : [Number(p.published)];
    const parts = String(p).split(":");
    return parts.length < 2 ? [] : [Number(parts[parts.length - 2])];
  });
}

const compose = readYaml(join(ROOT, "docker-compose.yml")) as { services?: Record<string, ComposeService> };
const services = compose.services ?? {};

/** Directories under services/ at the time the test runs: each is one deployable Moleculer service. */
function serviceDirs(): string[] {
  const dir = join(ROOT, "services");
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
}

describe("docker-compose.yml", () => {
  it("has the infrastructure and the gateway", () => {
    for (const name of ["mongo", "redis", "nats", "opa", "gateway"]) expect(services).toHaveProperty(name);
  });

  it("has a container for every directory under services/, with SERVICE set to its name", () => {
    for (const name of serviceDirs()) {
      expect({ name, present: name in services }).toEqual({ name, present: true });
      expect({ name, SERVICE: envOf(services[name]!).SERVICE }).toEqual({ name, SERVICE: name });
    }
  });

  it("runs every application container from the Dockerfile, SERVICE matching the compose name", () => {
    const apps = Object.entries(services).filter(([, svc]) => "SERVICE" in envOf(svc));
    expect(apps.map(([name]) => name)).toContain("gateway");
    for (const [name, svc] of apps) {
      expect({ name, SERVICE: envOf(svc).SERVICE }).toEqual({ name, SERVICE: name });
      expect({ name, build: svc.build }).toEqual({ name, build: expect.objectContaining({ dockerfile: "deploy/docker/Dockerfile" }) });
    }
  });

  it("names only processes the launcher knows, so no container starts a service that does not exist", async () => {
    const { processNames } = await import("../../deploy/local/services");
    const known = processNames();
    for (const [name, svc] of Object.entries(services)) {
      const service = envOf(svc).SERVICE;
      if (service !== undefined) expect({ name, known: known.includes(String(service)) }).toEqual({ name, known: true });
    }
  });

  it("sets no fixed NODEID anywhere", () => {
    for (const [name, svc] of Object.entries(services)) {
      expect({ name, keys: Object.keys(envOf(svc)).filter((k) => /^NODEID$/i.test(k)) }).toEqual({ name, keys: [] });
    }
  });

  it("publishes the gateway on 3000 and health-checks it", () => {
    const gateway = services.gateway!;
    expect(publishedPorts(gateway)).toContain(3000);
    expect(JSON.stringify(gateway.healthcheck?.test ?? "")).toContain("/health");
  });
});

describe("deploy/k8s", () => {
  const dir = join(ROOT, "deploy", "k8s");
  const docs = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => loadAll(readFileSync(join(dir, f), "utf8"), { schema: SCHEMA }).map((doc) => ({ file: f, doc: doc as any })));
  const deployments = docs.filter(({ doc }) => doc?.kind === "Deployment");

  it("has Deployments", () => {
    expect(deployments.length).toBeGreaterThan(0);
  });

  it("names an existing compose service in every Deployment, and runs it through SERVICE", () => {
    for (const { file, doc } of deployments) {
      const name: string = doc.metadata?.name;
      expect({ file, name, inCompose: name in services }).toEqual({ file, name, inCompose: true });
      const containers: { env?: { name: string; value?: string }[] }[] = doc.spec?.template?.spec?.containers ?? [];
      const service = containers.flatMap((c) => c.env ?? []).find((e) => e.name === "SERVICE")?.value;
      expect({ file, name, SERVICE: service }).toEqual({ file, name, SERVICE: name });
      const envNames = containers.flatMap((c) => (c.env ?? []).map((e) => e.name));
      expect({ name, nodeId: envNames.filter((n) => /^NODEID$/i.test(n)) }).toEqual({ name, nodeId: [] });
    }
  });

  it("has a Deployment for every directory under services/", () => {
    const names = deployments.map(({ doc }) => doc.metadata?.name);
    for (const name of serviceDirs()) expect({ name, deployed: names.includes(name) }).toEqual({ name, deployed: true });
  });
});
