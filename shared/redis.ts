// One ioredis client per process, shared by the relay, rate limits and health checks.
import Redis from "ioredis";
import { config } from "./config";

const clients = new Map<string, Redis>();

export function redisClient(url = config().redisUrl): Redis {
  let client = clients.get(url);
  if (!client) {
    client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    // Errors are surfaced per command (and by /ready); an unhandled 'error' event would crash the process.
    client.on("error", () => undefined);
    clients.set(url, client);
  }
  return client;
}

export async function closeRedisClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.all(all.map((c) => c.quit().catch(() => c.disconnect())));
}
