// Broker options for moleculer-runner and the REPL; the project's own launchers use shared/broker.ts.
import { brokerOptions } from "./shared/broker";

export default brokerOptions();
