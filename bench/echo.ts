// The baseline: a bare moleculer-web gateway calling an echo action over NATS, nothing else.
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";

const role = process.argv[2];
const broker = new ServiceBroker({
  namespace: process.env.ECHO_NAMESPACE ?? "bench-echo",
  transporter: { type: "NATS", options: { url: process.env.NATS_URL ?? "nats://127.0.0.1:4222" } },
  logger: false,
});
if (role === "gateway") {
  broker.createService({
    name: "api",
    mixins: [ApiGateway as any],
    settings: {
      port: Number(process.env.ECHO_PORT ?? 3101),
      ip: "127.0.0.1",
      logRequest: null,
      logResponse: null,
      routes: [{ path: "/", mappingPolicy: "restrict", aliases: { "GET echo": "echo.ping" } }],
    },
  });
} else {
  broker.createService({ name: "echo", actions: { ping: () => ({ pong: true }) } });
}
void broker.start();
