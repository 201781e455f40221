// Node liveness with millisecond resolution: a process that dies (kill -9, OOM) is dropped within
// about `timeoutMs`, and the requests waiting on it fail at once with RequestRejectedError (→ 503).
//
// Moleculer's own check counts heartbeats in whole seconds of uptime and runs every heartbeatTimeout
// seconds, so with 1 s beats and a 2 s timeout a dead node still took 2–4 s to drop (bench/failover.ts).
// Here every node beats every `beatMs` and checks the others every `beatMs / 2`; a node silent for
// `timeoutMs` is disconnected. A later heartbeat from it brings it back (Moleculer asks for its INFO).
import { Discoverers } from "moleculer";

const LocalDiscoverer = (Discoverers as any).Local as new (opts?: object) => any;

export interface LivenessOptions {
  beatMs: number;
  timeoutMs: number;
}

export class FastDiscoverer extends LocalDiscoverer {
  private readonly beatMs: number;
  private readonly timeoutMs: number;
  private readonly lastSeen = new Map<string, number>();
  private lastCheckAt = 0;

  constructor(opts: LivenessOptions) {
    super({ heartbeatInterval: Math.max(1, Math.round(opts.beatMs / 1000)), heartbeatTimeout: Math.max(1, Math.round(opts.timeoutMs / 1000)) });
    this.beatMs = opts.beatMs;
    this.timeoutMs = opts.timeoutMs;
  }

  startHeartbeatTimers(): void {
    this.stopHeartbeatTimers();
    const self = this as any;
    self.heartbeatTimer = setInterval(() => self.beat(), this.beatMs);
    self.heartbeatTimer.unref();
    const every = Math.max(25, Math.floor(this.beatMs / 2));
    this.lastCheckAt = Date.now();
    self.checkNodesTimer = setInterval(() => this.checkRemoteNodes(), every);
    self.checkNodesTimer.unref();
    self.offlineTimer = setInterval(() => self.checkOfflineNodes(), 60_000);
    self.offlineTimer.unref();
  }

  heartbeatReceived(nodeID: string, payload: unknown): void {
    this.lastSeen.set(nodeID, Date.now());
    super.heartbeatReceived(nodeID, payload);
  }

  checkRemoteNodes(): void {
    const self = this as any;
    if (self.opts.disableHeartbeatChecks) return;
    const now = Date.now();
    const every = Math.max(25, Math.floor(this.beatMs / 2));
    // This process was itself stalled (a long synchronous task): the silence we would see is ours, so
    // start everyone's clock afresh instead of dropping nodes that did beat meanwhile.
    const stalled = now - this.lastCheckAt > every + this.timeoutMs / 2;
    this.lastCheckAt = now;
    for (const node of self.registry.nodes.toArray()) {
      if (node.local || !node.available) continue;
      const seen = this.lastSeen.get(node.id);
      if (seen === undefined || stalled) {
        this.lastSeen.set(node.id, now);
        continue;
      }
      if (now - seen > this.timeoutMs) {
        self.logger.warn(`No heartbeat from '${node.id}' for ${now - seen} ms: dropping it.`);
        this.lastSeen.delete(node.id);
        self.registry.nodes.disconnected(node.id, true);
      }
    }
  }
}
