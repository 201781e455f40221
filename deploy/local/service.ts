// Starts one deployable process by name (`gateway`, `zones`, …): how each service is scaled alone.
import { ServiceBroker } from "moleculer";
import { applyDevEnv } from "./dev-env";
import { PROCESSES, processNames } from "./services";

async function main(): Promise<void> {
  const names = process.argv.slice(2).flatMap((a) => a.split(",")).filter(Boolean);
  if (!names.length || names.some((n) => !PROCESSES[n])) {
    console.error(`usage: npm run start:service -- <${processNames().join("|")}>[,more]`);
    process.exit(2);
  }
  applyDevEnv();
  const { brokerOptions, EmbeddedPrometheusReporter } = await import("../../shared/broker");
  const withGateway = names.includes("gateway");
  const broker = new ServiceBroker(
    brokerOptions({
      metrics: withGateway ? { enabled: true, reporter: [new (EmbeddedPrometheusReporter as any)({})] } as any : { enabled: false },
    }),
  );
  for (const name of names) for (const schema of await PROCESSES[name]!()) broker.createService(schema);
  await broker.start();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
