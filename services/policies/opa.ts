// The Open Policy Agent binary: compile checks of one module (`opa check`) and of a policy-set bundle
// compiled to WebAssembly (`opa build -t wasm`), both under capabilities without network, clock,
// randomness or runtime built-ins.
import { execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { FORBIDDEN_BUILTINS } from "./rego-check";

/** Refused by capabilities: the reference's nine, plus the other clock and randomness readers. */
export const CAPABILITY_REMOVED_BUILTINS = [...FORBIDDEN_BUILTINS, "uuid.rfc4122", "io.jwt.decode_verify", "crypto.x509.parse_and_verify_certificates_with_options"];

export const DECISION_ENTRYPOINT = "caracal/authz/result";

export interface OpaError {
  code: string;
  message: string;
  /** The module the error is in: a policy_version_id, or "decision-contract" (bundles only). */
  module?: string;
  row: number;
  col: number;
}

export type BuildResult = { ok: true; wasm: Buffer } | { ok: false; errors: OpaError[] };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Opa {
  private dir = "";
  private capabilities = "";
  private running = 0;
  private waiting: (() => void)[] = [];
  private children = new Set<ChildProcess>();

  constructor(
    private readonly bin: string,
    private readonly opts: { timeoutMs: number; maxConcurrent: number } = { timeoutMs: 20_000, maxConcurrent: 4 },
  ) {}

  /** Writes the capabilities file derived from this binary's own. */
  async init(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), "caracal-opa-"));
    const current = await this.run(["capabilities", "--current"]);
    if (current.code !== 0) throw new Error(`opa capabilities failed: ${current.stderr.slice(0, 300)}`);
    const caps = JSON.parse(current.stdout) as { builtins: { name: string }[]; allow_net?: string[] };
    const removed = new Set<string>(CAPABILITY_REMOVED_BUILTINS);
    caps.builtins = caps.builtins.filter((b) => !removed.has(b.name));
    caps.allow_net = [];
    this.capabilities = join(this.dir, "capabilities.json");
    await writeFile(this.capabilities, JSON.stringify(caps));
  }

  /** Stops the opa processes still running (by PID) and removes the work directory. */
  async close(): Promise<void> {
    for (const child of this.children) if (child.pid && child.exitCode === null) process.kill(child.pid, "SIGKILL");
    this.children.clear();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Parses and compiles one module; [] when OPA accepts it. */
  async check(content: string): Promise<OpaError[]> {
    const work = await mkdtemp(join(this.dir, "check-"));
    try {
      const file = join(work, "policy.rego");
      await writeFile(file, content);
      const res = await this.run(["check", "--format", "json", "--v0-compatible", "--capabilities", this.capabilities, file]);
      if (res.code === 0) return [];
      return parseErrors(res, () => undefined);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Compiles the modules and the decision contract into one wasm policy with entrypoint caracal/authz/result. */
  async buildWasm(modules: { name: string; content: string }[]): Promise<BuildResult> {
    const work = await mkdtemp(join(this.dir, "build-"));
    try {
      const src = join(work, "src");
      await mkdir(src);
      const names = new Map<string, string>();
      for (const [i, m] of modules.entries()) {
        const file = `m${i}.rego`;
        names.set(file, m.name);
        await writeFile(join(src, file), m.content);
      }
      const out = join(work, "bundle.tar.gz");
      const res = await this.run(["build", "-t", "wasm", "-e", DECISION_ENTRYPOINT, "--v0-compatible", "--capabilities", this.capabilities, "-o", out, src]);
      if (res.code !== 0) {
        return { ok: false, errors: parseErrors(res, (file) => names.get(file.split("/").pop() ?? "") ?? file.split("/").pop()) };
      }
      const wasm = extractFromTarGz(await readFile(out), "policy.wasm");
      if (!wasm) return { ok: false, errors: [{ code: "wasm_missing", message: "opa build produced no policy.wasm", row: 0, col: 0 }] };
      return { ok: true, wasm };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private async run(args: string[]): Promise<RunResult> {
    while (this.running >= this.opts.maxConcurrent) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await new Promise<RunResult>((resolve) => {
        const child = execFile(this.bin, args, { timeout: this.opts.timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { HOME: tmpdir(), PATH: "/usr/bin:/bin" } }, (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
          this.children.delete(child);
          resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && code === -1 ? err.message : "") });
        });
        this.children.add(child);
      });
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

/** OPA prints `{"errors":[…]}` with locations when given --format json (check) or as text (build). */
function parseErrors(res: RunResult, moduleOf: (file: string) => string | undefined): OpaError[] {
  for (const text of [res.stdout, res.stderr]) {
    const start = text.indexOf("{");
    if (start === -1) continue;
    try {
      const parsed = JSON.parse(text.slice(start)) as { errors?: { code?: string; message?: string; location?: { file?: string; row?: number; col?: number } }[] };
      if (!parsed.errors?.length) continue;
      return parsed.errors.map((e) => {
        const module = e.location?.file ? moduleOf(e.location.file) : undefined;
        return { code: e.code ?? "rego_error", message: e.message ?? "", ...(module ? { module } : {}), row: e.location?.row ?? 0, col: e.location?.col ?? 0 };
      });
    } catch {
      // Text output: parsed below.
    }
  }
  // `opa build` reports as text: "N errors occurred:\n<file>:<row>: <code>: <message>"
  const errors: OpaError[] = [];
  for (const line of (res.stderr || res.stdout).split("\n")) {
    const m = /^(.+?):(\d+)(?::(\d+))?: (rego_[a-z_]+): (.*)$/.exec(line.trim().replace(/^error: \d+ errors? occurred:\s*/, ""));
    if (m) {
      const module = moduleOf(m[1]!);
      errors.push({ code: m[4]!, message: m[5]!, ...(module ? { module } : {}), row: Number(m[2]), col: Number(m[3] ?? 0) });
    }
  }
  if (errors.length) return errors;
  return [{ code: "opa_failed", message: (res.stderr || res.stdout).trim().slice(0, 500) || `opa exited with ${res.code}`, row: 0, col: 0 }];
}

/** Reads one file out of a gzipped tar (ustar headers of 512 bytes, sizes in octal). */
export function extractFromTarGz(gz: Buffer, wanted: string): Buffer | null {
  const tar = gunzipSync(gz);
  let off = 0;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    const name = header.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    if (!name) return null;
    const prefix = header.subarray(345, 500).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(header.subarray(124, 136).toString("utf8").replace(/\0.*$/s, "").trim() || "0", 8);
    const full = (prefix ? `${prefix}/${name}` : name).replace(/^\.?\//, "");
    if (full === wanted) return Buffer.from(tar.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return null;
}
