// The gateway's HTTP server: time limits for slow clients, a cap on open connections per client IP,
// the error envelope for requests Node refuses before any handler runs, and draining at shutdown.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { randomUUID } from "node:crypto";

export interface HttpLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnectionsPerIp: number;
}

export interface GatewayServer {
  server: http.Server;
  /** Requests being answered right now. */
  inFlight(): number;
  /** Stops accepting, closes idle keep-alive sockets, and waits (at most `timeoutMs`) for the requests in flight. */
  drain(timeoutMs: number): Promise<void>;
}

/** A whole HTTP response written straight to a socket, for when there is no request object to answer. */
function rawEnvelope(status: number, reason: string, error: string, description: string, extra: Record<string, string> = {}, head = false): string {
  const requestId = randomUUID();
  const body = JSON.stringify({ error, error_description: description, request_id: requestId });
  const headers = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Request-Id": requestId,
    "Content-Length": String(Buffer.byteLength(body)),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    Connection: "close",
    ...extra,
  };
  // The answer to a HEAD request has the headers of the body it does not carry.
  return `HTTP/1.1 ${status} ${reason}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n${head ? "" : body}`;
}

/** What to answer for an error Node's parser or its timers raised on a connection. */
function clientErrorResponse(err: NodeJS.ErrnoException & { rawPacket?: Buffer }): string | null {
  const head = err.rawPacket?.subarray(0, 5).toString("latin1") === "HEAD ";
  switch (err.code) {
    case "ECONNRESET":
    case "EPIPE":
      return null;
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return rawEnvelope(408, "Request Timeout", "request_timeout", "The request was not received in time");
    case "HPE_HEADER_OVERFLOW":
      return rawEnvelope(431, "Request Header Fields Too Large", "headers_too_large", "The request headers are too large", {}, head);
    default:
      return rawEnvelope(400, "Bad Request", "bad_request", "The request is not valid HTTP/1.1", {}, head);
  }
}

export function createGatewayServer(limits: HttpLimits, handler: (req: IncomingMessage, res: ServerResponse) => void): GatewayServer {
  const requestTimeout = limits.requestTimeoutMs;
  const headersTimeout = Math.min(limits.headersTimeoutMs, requestTimeout);
  const server = http.createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node looks for expired requests on this period (30 s by default), which would stretch every limit.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    handler,
  );

  const openPerIp = new Map<string, number>();
  server.on("connection", (socket: Socket) => {
    const ip = socket.remoteAddress ?? "unknown";
    const open = (openPerIp.get(ip) ?? 0) + 1;
    openPerIp.set(ip, open);
    socket.once("close", () => {
      const left = (openPerIp.get(ip) ?? 1) - 1;
      if (left > 0) openPerIp.set(ip, left);
      else openPerIp.delete(ip);
    });
    if (open > limits.maxConnectionsPerIp) {
      socket.end(rawEnvelope(429, "Too Many Requests", "too_many_connections", `At most ${limits.maxConnectionsPerIp} open connections per client`, { "Retry-After": "1" }));
      socket.destroySoon();
    }
  });

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    // A response already under way on this socket cannot be replaced by another one.
    const busy = Boolean((socket as Socket & { _httpMessage?: ServerResponse })._httpMessage?.headersSent);
    const response = busy || !socket.writable ? null : clientErrorResponse(err);
    if (response) socket.end(response);
    else socket.destroy();
  });

  let active = 0;
  const idleWaiters: (() => void)[] = [];
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    active++;
    res.once("close", () => {
      active--;
      if (active === 0) idleWaiters.splice(0).forEach((wake) => wake());
    });
  });

  return {
    server,
    inFlight: () => active,
    async drain(timeoutMs: number) {
      if (server.listening) server.close();
      server.closeIdleConnections();
      if (active === 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => idleWaiters.push(r)), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    },
  };
}
