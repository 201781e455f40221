// `emit load`: a steady synthetic mix of runtime entries at --rate per second for --duration seconds, then stops.
import { newId } from "../../../shared/ids";
import type { FlatFields } from "../../../shared/signing";
import { AGENTS_STREAM, CHALLENGES_STREAM, SESSIONS_STREAM } from "../../../services/sessions/entries";
import { agentSpawn, agentTransition, challengeCreated, sessionCreated, sessionEnded } from "../builders";
import type { EmitKind } from "../kind";

const TICK_MS = 100;
const KINDS = ["session", "revoke", "spawn", "child", "terminate", "challenge"] as const;
type Kind = (typeof KINDS)[number];
const DEFAULT_MIX = "session=3,revoke=1,spawn=2,child=2,terminate=1,challenge=1";
/** Recent ids the load refers back to (children, terminations, revocations, challenges). */
const KEEP = 5000;

function parseMix(raw: string): [Kind, number][] {
  const out: [Kind, number][] = [];
  for (const part of raw.split(",")) {
    const [k, w] = part.split("=");
    if (!KINDS.includes(k as Kind) || !/^\d+$/.test(w ?? "")) throw new Error(`--mix takes kind=weight pairs of ${KINDS.join(", ")}`);
    if (Number(w) > 0) out.push([k as Kind, Number(w)]);
  }
  if (!out.length) throw new Error("--mix has no positive weight");
  return out;
}

export const loadKind: EmitKind = {
  name: "load",
  summary: "a steady synthetic load over the three runtime streams, at --rate entries/s for --duration s (bounded, stops by itself)",
  usage: `--zone Z[,Z2…] [--rate 100] [--duration 10] [--mix ${DEFAULT_MIX}]`,
  async run(args, emitter) {
    const zones = args.list("zone");
    if (!zones.length) throw new Error("--zone is required");
    const rate = args.int("rate", 100, 1, 100_000);
    const duration = args.int("duration", 10, 1, 3600);
    const mix = parseMix(args.str("mix", DEFAULT_MIX));
    const total = mix.reduce((s, [, w]) => s + w, 0);
    const app = newId();
    const sessions: { zone: string; id: string }[] = [];
    const agents: { zone: string; id: string }[] = [];
    const counts: Record<string, number> = {};
    let n = 0;
    const pick = (): Kind => {
      let r = (n * 7919) % total;
      for (const [k, w] of mix) {
        if (r < w) return k;
        r -= w;
      }
      return mix[0]![0];
    };
    const remember = (list: { zone: string; id: string }[], item: { zone: string; id: string }) => {
      list.push(item);
      if (list.length > KEEP) list.splice(0, list.length - KEEP);
    };
    const one = (): [string, FlatFields] => {
      const zone = zones[n % zones.length]!;
      n++;
      let kind = pick();
      if ((kind === "revoke" && !sessions.length) || ((kind === "child" || kind === "terminate") && !agents.length)) kind = kind === "revoke" ? "session" : "spawn";
      counts[kind] = (counts[kind] ?? 0) + 1;
      const any = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]!;
      switch (kind) {
        case "session": {
          const id = newId();
          remember(sessions, { zone, id });
          return [SESSIONS_STREAM, sessionCreated({ zone, id, subject: `user-${n % 97}` })];
        }
        case "revoke": {
          const s = sessions.splice(Math.floor(Math.random() * sessions.length), 1)[0]!;
          return [SESSIONS_STREAM, sessionEnded({ zone: s.zone, id: s.id, event: "revoked", reason: "logout" })];
        }
        case "spawn":
        case "child": {
          const parent = kind === "child" ? any(agents) : null;
          const id = newId();
          remember(agents, { zone: parent?.zone ?? zone, id });
          return [AGENTS_STREAM, agentSpawn({ zone: parent?.zone ?? zone, id, application: app, parent: parent?.id ?? null, labels: [`l${n % 5}`] })];
        }
        case "terminate": {
          const a = agents.splice(Math.floor(Math.random() * agents.length), 1)[0]!;
          return [AGENTS_STREAM, agentTransition({ zone: a.zone, id: a.id, event: "terminate" })];
        }
        case "challenge":
          return [CHALLENGES_STREAM, challengeCreated({ zone, session: sessions.length ? any(sessions).id : "" })];
      }
    };
    const started = Date.now();
    const until = started + duration * 1000;
    let sent = 0;
    while (Date.now() < until) {
      const due = Math.min(rate * duration, Math.floor(((Date.now() - started) / 1000) * rate)) - sent;
      if (due > 0) {
        const byStream = new Map<string, FlatFields[]>();
        for (let i = 0; i < due; i++) {
          const [stream, fields] = one();
          byStream.set(stream, [...(byStream.get(stream) ?? []), fields]);
        }
        await Promise.all([...byStream].map(([stream, list]) => emitter.publish(stream, list)));
        sent += due;
      }
      await new Promise((r) => setTimeout(r, TICK_MS));
    }
    const seconds = (Date.now() - started) / 1000;
    return { published: sent, seconds, rate: Math.round(sent / seconds), by_kind: counts, zones };
  },
};
