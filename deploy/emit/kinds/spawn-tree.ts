// `emit spawn-tree`: a root agent session and `width` children under every node down to `depth`.
import { newId } from "../../../shared/ids";
import { AGENTS_STREAM } from "../../../services/sessions/entries";
import { agentSpawn } from "../builders";
import type { EmitKind } from "../kind";

const MAX_NODES = 100_000;

export const spawnTreeKind: EmitKind = {
  name: "spawn-tree",
  summary: "a spawn tree on caracal.agents.lifecycle: one root, --width children per node, leaves at --depth (parents first)",
  usage: "--zone Z [--depth 2] [--width 3] [--application A] [--subject-session S] [--lifecycle task|service] [--labels a,b]",
  async run(args, emitter) {
    const zone = args.str("zone");
    const depth = args.int("depth", 2, 0, 20);
    const width = args.int("width", 3, 1, 1000);
    let nodes = 0;
    for (let d = 0, level = 1; d <= depth; d++, level *= width) nodes += level;
    if (nodes > MAX_NODES) throw new Error(`a tree of depth ${depth} and width ${width} has ${nodes} nodes; at most ${MAX_NODES}`);
    const application = args.str("application", newId());
    const common = { zone, application, subjectSession: args.optional("subject-session") ?? null, lifecycle: args.oneOf("lifecycle", ["task", "service"] as const, "task"), labels: args.list("labels") };
    const root = newId();
    const entries = [agentSpawn({ ...common, id: root })];
    let level = [root];
    const levels: string[][] = [[root]];
    for (let d = 1; d <= depth; d++) {
      const next: string[] = [];
      for (const parent of level) {
        for (let w = 0; w < width; w++) {
          const id = newId();
          next.push(id);
          entries.push(agentSpawn({ ...common, id, parent }));
        }
      }
      levels.push(next);
      level = next;
    }
    const ids: string[] = [];
    for (let i = 0; i < entries.length; i += 1000) ids.push(...(await emitter.publish(AGENTS_STREAM, entries.slice(i, i + 1000))));
    return { stream: emitter.stream(AGENTS_STREAM), published: ids.length, application_id: application, root, levels: levels.map((l) => l.length), leaves: level.slice(0, 20) };
  },
};
