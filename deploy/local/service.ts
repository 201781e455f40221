// Starts one deployable process by name (`gateway`, `zones`, …): how each service is scaled alone.
import { ServiceBroker } from "moleculer";
import { applyDevEnv } from "./dev-env";
import { PROCESSES, processNames } from "./services";

/** Longest a gateway waits for the requests in flight when asked to stop. */
const DRAIN_MS = 15_000;

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
      // Stopping is ours (below): the gateway first stops taking requests and answers those in flight.
      skipProcessEventRegistration: true,
    }),
  );
  for (const name of names) for (const schema of await PROCESSES[name]!()) broker.createService(schema);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    broker.logger.info(`${signal}: draining and stopping`);
    const api = broker.getLocalService("api") as { drain?: (ms: number) => Promise<void> } | undefined;
    await api?.drain?.(DRAIN_MS);
    // Moleculer waits for the actions in flight (tracking), then each service stops; a relay finishes its pass.
    await broker.stop().catch((err: Error) => broker.logger.error({ err: err.message }, "stop failed"));
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  await broker.start();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
