// Runs decisions of compiled policy-set versions in a worker thread with a time limit per evaluation.
// A policy that runs past the limit gets its worker terminated; the others are re-sent to a fresh one.
import { Worker } from "node:worker_threads";
import { join } from "node:path";

export type Evaluation = { ok: true; result: unknown } | { ok: false; error: string };

interface Pending {
  versionId: string;
  input: unknown;
  wasm: () => Promise<Buffer>;
  resolve: (e: Evaluation) => void;
  /** Runs from the moment the worker has what it needs: building a bundle is not evaluation time. */
  timer: NodeJS.Timeout | null;
}

export class Evaluator {
  private worker: Worker | null = null;
  private seq = 0;
  private pending = new Map<number, Pending>();
  private stopped = false;

  constructor(private readonly timeoutMs: number) {}

  /** Evaluates `input` against a version; `wasm` supplies the compiled module when the worker lacks it. */
  evaluate(versionId: string, wasm: () => Promise<Buffer>, input: unknown): Promise<Evaluation> {
    if (this.stopped) return Promise.resolve({ ok: false, error: "evaluator stopped" });
    return new Promise<Evaluation>((resolve) => {
      const id = ++this.seq;
      this.pending.set(id, { versionId, input, wasm, resolve, timer: null });
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
    const worker = new Worker(join(__dirname, "evaluator.worker.js"));
    worker.unref();
    worker.on("message", (msg: { id: number; notLoaded?: boolean; result?: unknown; error?: string }) => this.onMessage(msg));
    worker.on("error", (err) => this.restart(`evaluator failed: ${err.message}`));
    worker.on("exit", () => {
      if (this.worker === worker) this.restart("evaluator exited");
    });
    this.worker = worker;
    return worker;
  }

  private send(id: number, withWasm: boolean): void {
    const p = this.pending.get(id);
    if (!p) return;
    if (!withWasm) {
      this.arm(id, p);
      this.ensureWorker().postMessage({ id, versionId: p.versionId, input: p.input });
      return;
    }
    p.wasm().then(
      (wasm) => {
        if (!this.pending.has(id)) return;
        this.arm(id, p);
        this.ensureWorker().postMessage({ id, versionId: p.versionId, input: p.input, wasm });
      },
      (err: Error) => this.finish(id, p, { ok: false, error: `policy bundle unavailable: ${err.message}` }),
    );
  }

  private onMessage(msg: { id: number; notLoaded?: boolean; result?: unknown; error?: string }): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.notLoaded) return this.send(msg.id, true);
    this.finish(msg.id, p, msg.error !== undefined ? { ok: false, error: msg.error } : { ok: true, result: msg.result });
  }

  private arm(id: number, p: Pending): void {
    if (p.timer) clearTimeout(p.timer);
    p.timer = setTimeout(() => this.timedOut(id), this.timeoutMs);
  }

  private finish(id: number, p: Pending, e: Evaluation): void {
    if (p.timer) clearTimeout(p.timer);
    this.pending.delete(id);
    p.resolve(e);
  }

  private timedOut(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.finish(id, p, { ok: false, error: `evaluation exceeded ${this.timeoutMs} ms` });
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
      else this.send(id, false);
    }
  }
}
