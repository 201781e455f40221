// GET /v1/zones/:zoneId/events/stream: a zone's change entries live, as server-sent events.
//
// Where the events come from: the gateway reads `caracal.zone.events` itself. One reader per gateway
// process follows the stream (XREAD BLOCK, no consumer group: every gateway sees every entry) and hands
// each verified entry to the clients of its zone. The SSE `id` is the entry's Redis stream id, which is
// totally ordered, so a client that reconnects with `Last-Event-ID` gets exactly the entries after it:
// the gateway reads them back with XRANGE while new ones queue for that client, then sends the queue,
// skipping anything at or before the last id sent — no gap, no duplicate. When the stream has already
// trimmed past the resume point (Redis 7 counts the entries ever added), the older part comes from the
// audit service's stored feed.
// A client whose socket cannot keep up (more than the buffer limit unsent) is disconnected; it resumes
// from its last id. Redis going away only pauses the reader: it retries and continues from its last id.
import type { IncomingMessage, ServerResponse } from "node:http";
import type Redis from "ioredis";
import type { ServiceBroker } from "moleculer";
import { fieldsOf, verify, type SigningKey } from "../shared/signing";
import { compareStreamIds, zoneEventOf, STREAM_ID, type ZoneEvent } from "../shared/zone-events";

const READ_COUNT = 500;
const BLOCK_MS = 5000;
/** Queued while a resuming client catches up; past this the client is dropped (it resumes later). */
const MAX_PENDING = 10_000;

interface Client {
  zoneId: string;
  res: ServerResponse;
  lastSent: string | null;
  catchingUp: boolean;
  pending: { id: string; event: ZoneEvent }[];
  closed: boolean;
}

export interface StreamsLogger {
  warn(obj: object, msg: string): void;
}

export class ZoneEventStreams {
  private reader: Redis | null = null;
  private lastId = "$";
  private running: Promise<void> | null = null;
  private stopping = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly clients = new Map<string, Set<Client>>();

  constructor(
    private readonly redis: Redis,
    private readonly stream: string,
    private readonly keys: SigningKey[],
    private readonly broker: ServiceBroker,
    private readonly opts: { heartbeatMs: number; maxBufferBytes: number },
    private readonly logger: StreamsLogger,
  ) {}

  get clientCount(): number {
    let n = 0;
    for (const set of this.clients.values()) n += set.size;
    return n;
  }

  /** Serves one subscriber until it goes away. */
  async serve(req: IncomingMessage, res: ServerResponse, zoneId: string): Promise<void> {
    this.ensureReader();
    const given = req.headers["last-event-id"];
    const resumeFrom = typeof given === "string" && STREAM_ID.test(given.trim()) ? given.trim() : null;
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", Connection: "keep-alive", "X-Accel-Buffering": "no" });
    res.write(": connected\n\n");
    const client: Client = { zoneId, res, lastSent: resumeFrom, catchingUp: resumeFrom !== null, pending: [], closed: false };
    let set = this.clients.get(zoneId);
    if (!set) this.clients.set(zoneId, (set = new Set()));
    set.add(client);
    res.on("close", () => this.drop(client));
    if (resumeFrom) {
      try {
        await this.catchUp(client, resumeFrom);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, "zone event stream: catching up failed; the client will resume again");
        return this.close(client);
      }
      client.catchingUp = false;
      for (const { id, event } of client.pending.splice(0)) this.send(client, id, event);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const set of this.clients.values()) for (const c of set) this.close(c);
    this.reader?.disconnect();
    await this.running;
  }

  private ensureReader(): void {
    if (this.running || this.stopping) return;
    this.reader = this.redis.duplicate();
    this.reader.on("error", () => undefined);
    this.running = this.follow();
    this.heartbeat = setInterval(() => {
      for (const set of this.clients.values()) for (const c of set) this.write(c, ": heartbeat\n\n");
    }, this.opts.heartbeatMs);
    this.heartbeat.unref?.();
  }

  /** The one reader: from the stream's end at start, then from the last entry it saw, whatever happens. */
  private async follow(): Promise<void> {
    while (!this.stopping) {
      try {
        if (this.lastId === "$") {
          const last = (await this.reader!.xrevrange(this.stream, "+", "-", "COUNT", 1)) as [string, string[]][];
          this.lastId = last[0]?.[0] ?? "0-0";
        }
        const res = (await this.reader!.xread("COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", this.stream, this.lastId)) as [string, [string, string[]][]][] | null;
        for (const [id, flat] of res?.[0]?.[1] ?? []) {
          this.lastId = id;
          const event = this.eventOf(id, flat);
          if (!event) continue;
          for (const c of this.clients.get(event.zone_id) ?? []) this.deliver(c, id, event);
        }
      } catch (err) {
        if (this.stopping) break;
        this.logger.warn({ err: (err as Error).message }, "zone event stream: read failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private eventOf(id: string, flat: string[]): ZoneEvent | null {
    const fields = fieldsOf(flat);
    if (!verify(this.keys, this.stream, fields)) return null;
    return zoneEventOf(id, fields);
  }

  /** Entries after `from`: the stored feed for what the stream no longer holds, then the stream itself. */
  private async catchUp(client: Client, from: string): Promise<void> {
    const keptFrom = await this.firstKeptId();
    if (keptFrom !== undefined && (keptFrom === null || compareStreamIds(keptFrom, from) > 0)) {
      // Trimmed since: what the audit service stored, up to where the stream starts (all of it if empty).
      const dropped = (e: ZoneEvent) => keptFrom === null || compareStreamIds(e.stream_id, keptFrom) < 0;
      for (let guard = 0; guard < 100 && !client.closed; guard++) {
        const rows = await this.broker.call<ZoneEvent[], { zone_id: string; after: string; limit: number }>("audit.zoneEventsAfter", { zone_id: client.zoneId, after: client.lastSent ?? from, limit: 500 });
        const older = rows.filter(dropped);
        for (const e of older) this.send(client, e.stream_id, e);
        if (older.length < rows.length || rows.length < 500) break;
      }
    }
    let cursor = `(${client.lastSent ?? from}`;
    while (!client.closed) {
      const batch = (await this.redis.xrange(this.stream, cursor, "+", "COUNT", READ_COUNT)) as [string, string[]][];
      for (const [id, flat] of batch) {
        const event = this.eventOf(id, flat);
        if (event && event.zone_id === client.zoneId) this.send(client, id, event);
      }
      if (batch.length < READ_COUNT) break;
      cursor = `(${batch[batch.length - 1]![0]}`;
    }
  }

  /**
   * Where the stream's retained part begins when it has dropped entries (trimmed by MAXLEN): the first id
   * it still holds, or null when it holds none. Undefined when it never dropped any.
   */
  private async firstKeptId(): Promise<string | null | undefined> {
    let info: unknown[];
    try {
      info = (await this.redis.xinfo("STREAM", this.stream)) as unknown[];
    } catch {
      return undefined;
    }
    const f: Record<string, unknown> = {};
    for (let i = 0; i + 1 < info.length; i += 2) f[String(info[i])] = info[i + 1];
    if (!(Number(f["entries-added"]) > Number(f.length))) return undefined;
    const first = f["first-entry"] as [string, string[]] | null;
    return first ? first[0] : null;
  }

  private deliver(client: Client, id: string, event: ZoneEvent): void {
    if (!client.catchingUp) return this.send(client, id, event);
    client.pending.push({ id, event });
    if (client.pending.length > MAX_PENDING) this.close(client);
  }

  private send(client: Client, id: string, event: ZoneEvent): void {
    if (client.lastSent && compareStreamIds(id, client.lastSent) <= 0) return;
    client.lastSent = id;
    this.write(client, `id: ${id}\nevent: zone_event\ndata: ${JSON.stringify(event)}\n\n`);
  }

  private write(client: Client, text: string): void {
    if (client.closed) return;
    client.res.write(text);
    // A slow reader: rather than buffer without bound, drop it; it resumes from its last id.
    if (client.res.writableLength > this.opts.maxBufferBytes) this.close(client);
  }

  private close(client: Client): void {
    if (client.closed) return;
    this.drop(client);
    client.res.end();
  }

  private drop(client: Client): void {
    client.closed = true;
    const set = this.clients.get(client.zoneId);
    set?.delete(client);
    if (set && !set.size) this.clients.delete(client.zoneId);
  }
}
