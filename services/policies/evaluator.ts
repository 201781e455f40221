// Runs decisions of compiled policy-set versions in a worker thread with a time limit per evaluation.
// A policy that runs past the limit gets its worker terminated; the others are re-sent to a fresh one.
// Only evaluation counts against the limit: booting the worker, building a bundle and loading the wasm
// module have their own, generous bound (a cold start after a restart is not a slow policy).
import { Worker } from "node:worker_threads";
import { join } from "node:path";

export type Evaluation = { ok: true; result: unknown } | { ok: false; error: string };

interface Pending {
  versionId: string;
  input: unknown;
  wasm: () => Promise<Buffer>;
  resolve: (e: Evaluation) => void;
  /** Only load the module into the worker (warming), do not evaluate. */
  preload: boolean;
  timer: NodeJS.Timeout | null;
}

type WorkerMessage = { ready?: boolean; id?: number; notLoaded?: boolean; loaded?: boolean; started?: boolean; result?: unknown; error?: string };

export interface EvaluatorOptions {
  /** Bound on booting the worker and loading a module, which are not evaluation time. */
  loadTimeoutMs?: number;
  /** The worker script (tests give one that boots slowly). */
  workerFile?: string;
}

export class Evaluator {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private seq = 0;
  private pending = new Map<number, Pending>();
  private stopped = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly opts: EvaluatorOptions = {},
  ) {}

  /** Boots the worker now (it loads the wasm runtime), so the first decision does not pay for it. */
  warm(): Promise<void> {
    this.ensureWorker();
    return this.ready!;
  }

  /** Loads a version's module into the worker ahead of its first decision; false when that failed. */
  async preload(versionId: string, wasm: Buffer): Promise<boolean> {
    if (this.stopped) return false;
    const res = await new Promise<Evaluation>((resolve) => {
      const id = ++this.seq;
      this.pending.set(id, { versionId, input: undefined, wasm: async () => wasm, resolve, preload: true, timer: null });
      this.send(id, true);
    });
    return res.ok;
  }

  /** Evaluates `input` against a version; `wasm` supplies the compiled module when the worker lacks it. */
  evaluate(versionId: string, wasm: () => Promise<Buffer>, input: unknown): Promise<Evaluation> {
    if (this.stopped) return Promise.resolve({ ok: false, error: "evaluator stopped" });
    return new Promise<Evaluation>((resolve) => {
      const id = ++this.seq;
      this.pending.set(id, { versionId, input, wasm, resolve, preload: false, timer: null });
      this.send(id, false);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const [id, p] of this.pending) this.finish(id, p, { ok: false, error: "evaluator stopped" });
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.opts.workerFile ?? join(__dirname, "evaluator.worker.js"));
    worker.unref();
    let booted!: () => void;
    this.ready = new Promise<void>((resolve) => (booted = resolve));
    worker.on("message", (msg: WorkerMessage) => {
      if (msg.ready) return booted();
      this.onMessage(msg);
    });
    worker.on("error", (err) => this.restart(`evaluator failed: ${err.message}`));
    worker.on("exit", () => {
      booted();
      if (this.worker === worker) this.restart("evaluator exited");
    });
    this.worker = worker;
    return worker;
  }

  private send(id: number, withWasm: boolean): void {
    const p = this.pending.get(id);
    if (!p) return;
    if (!withWasm) {
      this.armLoad(id, p);
      this.ensureWorker().postMessage({ id, versionId: p.versionId, input: p.input });
      return;
    }
    p.wasm().then(
      (wasm) => {
        if (!this.pending.has(id)) return;
        this.armLoad(id, p);
        this.ensureWorker().postMessage({ id, versionId: p.versionId, input: p.input, wasm, ...(p.preload ? { preload: true } : {}) });
      },
      (err: Error) => this.finish(id, p, { ok: false, error: `policy bundle unavailable: ${err.message}` }),
    );
  }

  private onMessage(msg: WorkerMessage): void {
    const p = msg.id === undefined ? undefined : this.pending.get(msg.id);
    if (!p) return;
    const id = msg.id!;
    if (msg.started) return this.arm(id, p, this.timeoutMs, `evaluation exceeded ${this.timeoutMs} ms`);
    if (msg.notLoaded) return this.send(id, true);
    if (msg.loaded) return this.finish(id, p, { ok: true, result: null });
    this.finish(id, p, msg.error !== undefined ? { ok: false, error: msg.error } : { ok: true, result: msg.result });
  }

  /** Until the worker says the evaluation started: booting and loading, bounded but not by the evaluation limit. */
  private armLoad(id: number, p: Pending): void {
    const ms = this.opts.loadTimeoutMs ?? 30_000;
    this.arm(id, p, ms, `the evaluator did not load the policy within ${ms} ms`);
  }

  private arm(id: number, p: Pending, ms: number, reason: string): void {
    if (p.timer) clearTimeout(p.timer);
    p.timer = setTimeout(() => this.timedOut(id, reason), ms);
  }

  private finish(id: number, p: Pending, e: Evaluation): void {
    if (p.timer) clearTimeout(p.timer);
    this.pending.delete(id);
    p.resolve(e);
  }

  private timedOut(id: number, reason: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.finish(id, p, { ok: false, error: reason });
    this.restart(null);
  }

  /** Replaces the worker; evaluations still waiting are sent again to the new one (or failed with `reason`). */
  private restart(reason: string | null): void {
    const old = this.worker;
    this.worker = null;
    if (old) void old.terminate();
    if (this.stopped) return;
    for (const [id, p] of this.pending) {
      if (reason) this.finish(id, p, { ok: false, error: reason });
      else this.send(id, p.preload);
    }
  }
}
