// Evaluates compiled policy-set versions (OPA WebAssembly) off the main thread, so a slow policy can be
// stopped by terminating this worker. Plain CommonJS: worker threads load it without a TS loader.
// Messages in: {id, versionId, input, wasm?} to evaluate, {id, versionId, wasm, preload: true} to load only.
// Messages out: {ready} once booted; {id, started} just before an evaluation runs (the time limit counts
// from there); {id, result} / {id, error} / {id, notLoaded} / {id, loaded}.
"use strict";
const { parentPort } = require("node:worker_threads");
const { loadPolicy } = require("@open-policy-agent/opa-wasm");

const MAX_LOADED = 64;
const loaded = new Map(); // versionId -> LoadedPolicy, oldest first

async function policyFor(msg) {
  const hit = loaded.get(msg.versionId);
  if (hit) {
    loaded.delete(msg.versionId);
    loaded.set(msg.versionId, hit);
    return hit;
  }
  if (!msg.wasm) return null;
  // 256 MiB of wasm memory at most: a runaway policy fails (or hits the time limit) instead of exhausting the process.
  const policy = await loadPolicy(msg.wasm, { initial: 5, maximum: 4096 });
  loaded.set(msg.versionId, policy);
  if (loaded.size > MAX_LOADED) loaded.delete(loaded.keys().next().value);
  return policy;
}

parentPort.on("message", async (msg) => {
  try {
    const policy = await policyFor(msg);
    if (!policy) return parentPort.postMessage({ id: msg.id, notLoaded: true });
    if (msg.preload) return parentPort.postMessage({ id: msg.id, loaded: true });
    parentPort.postMessage({ id: msg.id, started: true });
    parentPort.postMessage({ id: msg.id, result: policy.evaluate(msg.input) });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: String((err && err.message) || err) });
  }
});

parentPort.postMessage({ ready: true });
