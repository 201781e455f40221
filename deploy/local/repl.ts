// `npm run repl`: a Moleculer REPL node that joins the running cluster over NATS (same namespace).
import { ServiceBroker } from "moleculer";
import { applyDevEnv } from "./dev-env";

async function main(): Promise<void> {
  applyDevEnv();
  const { brokerOptions } = await import("../../shared/broker");
  const broker = new ServiceBroker(brokerOptions({ nodeID: `repl-${process.pid}`, logger: { type: "Pino", options: { level: "warn" } } as any }));
  await broker.start();
  await broker.repl();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
