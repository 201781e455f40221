// `npm run emit -- <kind> [options]`: publishes well-formed, signed runtime entries for tests, demos and load.
// Every kind is one module in kinds/, registered in KINDS below; common options apply to all of them:
//   --prefix P        stream name prefix (default STREAM_PREFIX, empty in production)
//   --redis URL       default REDIS_URL
//   --unsigned        publish without kid/_sig           --bad-signature   sign with a key nobody holds
//   --set k=v[,k=v]   set fields after building           --unset k[,k]     drop fields after building
// The key is STREAMS_HMAC_KEY (kid STREAMS_HMAC_KID); in dev the one in .local/dev.env, as the services use.
import Redis from "ioredis";
import { Args } from "./args";
import { Emitter } from "./emitter";
import type { EmitKind } from "./kind";
import { sessionKind } from "./kinds/session";
import { agentKind } from "./kinds/agent";
import { spawnTreeKind } from "./kinds/spawn-tree";
import { challengeKind } from "./kinds/challenge";
import { loadKind } from "./kinds/load";
import { auditKind } from "./kinds/audit";

export const KINDS: EmitKind[] = [sessionKind, agentKind, spawnTreeKind, challengeKind, loadKind, auditKind];

export function usage(): string {
  return ["usage: npm run emit -- <kind> [options]", "", ...KINDS.map((k) => `  ${k.name.padEnd(11)} ${k.summary}\n  ${" ".repeat(11)} ${k.usage}`)].join("\n");
}

/** Runs one kind with these arguments (the command line minus `node …`); tests call it in-process. */
export async function emit(argv: string[]): Promise<Record<string, unknown>> {
  const [name, ...rest] = argv;
  const kind = KINDS.find((k) => k.name === name);
  if (!kind) throw new Error(name ? `unknown kind "${name}"\n${usage()}` : usage());
  const args = new Args(rest);
  const { config } = await import("../../shared/config");
  const cfg = config();
  const pairs = Object.fromEntries(args.list("set").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  const redis = new Redis(args.str("redis", cfg.redisUrl), { maxRetriesPerRequest: 2 });
  try {
    const emitter = new Emitter(redis, cfg.streamsHmacKeys[0] ?? null, args.str("prefix", cfg.streamPrefix), {
      unsigned: args.flag("unsigned"),
      badSignature: args.flag("bad-signature"),
      set: pairs,
      unset: args.list("unset"),
    });
    const checkOptions = () => {
      const unused = args.unused();
      if (unused.length) throw new Error(`unknown option(s) for ${kind.name}: ${unused.map((u) => `--${u}`).join(", ")}`);
    };
    // Every kind reads its options before it publishes: a mistyped one stops it before anything goes out.
    emitter.beforeFirst = checkOptions;
    const result = await kind.run(args, emitter);
    checkOptions();
    return result;
  } finally {
    redis.disconnect();
  }
}

if (require.main === module) {
  void (async () => {
    const { applyDevEnv } = await import("../local/dev-env");
    applyDevEnv();
    try {
      console.log(JSON.stringify(await emit(process.argv.slice(2)), null, 2));
    } catch (err) {
      console.error((err as Error).message);
      process.exitCode = 2;
    }
  })();
}
