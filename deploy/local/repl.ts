// `npm run repl`: a Moleculer REPL node that joins the running cluster over NATS: the namespace and NATS
// address `npm start` recorded in .local/dev.env, unless the environment names others. A trusted operator
// tool: it calls any action, internal ones included, with no authentication.
import { ServiceBroker } from "moleculer";
import { applyDevEnv, DEV_ENV_FILE } from "./dev-env";

async function main(): Promise<void> {
  const fromFile = applyDevEnv(process.env, { withRunSettings: true });
  const { brokerOptions } = await import("../../shared/broker");
  const { config } = await import("../../shared/config");
  const where = fromFile.includes("NAMESPACE") ? `as recorded by npm start in ${DEV_ENV_FILE}` : process.env.NAMESPACE ? "from the environment" : "the default";
  console.log(`[repl] joining namespace "${config().namespace}" on ${config().natsUrl} (${where})`);
  const broker = new ServiceBroker(brokerOptions({ nodeID: `repl-${process.pid}`, logger: { type: "Pino", options: { level: "warn" } } as any }));
  await broker.start();
  await broker.repl();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
