// The authorization-code exchange's HTTP POST: HTTPS only, public addresses only (checked on the DNS answer
// and on the socket actually connected), no redirects, a deadline and a size cap on the answer.
import https from "node:https";
import dns from "node:dns";
import tls from "node:tls";
import { isIP, type LookupFunction } from "node:net";
import type { ClientRequest } from "node:http";
import { isAllowedAddress } from "./address-guard";

export const TOKEN_TIMEOUT_MS = 15_000;
export const TOKEN_MAX_BYTES = 64 * 1024;

/** Any failure before a complete answer: refused address, TLS, timeout, oversize. The message names no secret. */
export class ExchangeFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExchangeFailure";
  }
}

export interface PostOptions {
  /** Test-only: loopback addresses pass the guard. */
  allowLoopback: boolean;
  /** One more trusted CA (test-only), added to Node's roots. */
  caPem?: string | null;
  timeoutMs?: number;
  maxBytes?: number;
  /** The resolver the guard wraps (dns.lookup); tests give one that answers what they need. */
  resolve?: typeof dns.lookup;
}

export interface FormResponse {
  status: number;
  body: Buffer;
}

/**
 * A `lookup` for the agent that resolves every address of the name and refuses the name when any of them
 * is not public, so a DNS answer mixing public and private addresses cannot steer the connection.
 */
export function guardedLookup(allowLoopback: boolean, resolve: typeof dns.lookup = dns.lookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { family: options.family, hints: options.hints, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 4);
      const list = addresses as unknown as dns.LookupAddress[];
      if (!list.length || list.some((a) => !isAllowedAddress(a.address, allowLoopback))) {
        return callback(Object.assign(new ExchangeFailure(`${hostname} resolves to a non-public address`), { code: "ENOTPUBLIC" }), "", 4);
      }
      if (options.all) return callback(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/**
 * Checks the address a request's socket actually connected to, whatever the resolver said, and destroys
 * the request when it is not public: on TCP connect, before TLS completes, so nothing of the request
 * (code, verifier, client secret) is sent to a refused address.
 */
export function refuseNonPublicPeer(req: ClientRequest, allowLoopback: boolean): void {
  req.on("socket", (socket) => {
    socket.once("connect", () => {
      if (!isAllowedAddress(socket.remoteAddress ?? "", allowLoopback)) req.destroy(new ExchangeFailure("connected to a non-public address"));
    });
  });
}

/** POSTs a form to an https endpoint and reads the whole answer (at most `maxBytes`). */
export function postForm(endpoint: URL, form: URLSearchParams, headers: Record<string, string>, opts: PostOptions): Promise<FormResponse> {
  const timeoutMs = opts.timeoutMs ?? TOKEN_TIMEOUT_MS;
  const maxBytes = opts.maxBytes ?? TOKEN_MAX_BYTES;
  return new Promise((resolve, reject) => {
    if (endpoint.protocol !== "https:") return reject(new ExchangeFailure("the token endpoint is not https"));
    const host = endpoint.hostname.replace(/^\[|\]$/g, "");
    // An IP literal is never looked up: judge it before any socket is opened.
    if (isIP(host) && !isAllowedAddress(host, opts.allowLoopback)) return reject(new ExchangeFailure("the token endpoint's address is not public"));
    const agent = new https.Agent({
      keepAlive: false,
      maxCachedSessions: 0,
      lookup: guardedLookup(opts.allowLoopback, opts.resolve),
      ...(opts.caPem ? { ca: [...tls.rootCertificates, opts.caPem] } : {}),
    });
    const payload = form.toString();
    let settled = false;
    const finish = (err: Error | null, value?: FormResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      agent.destroy();
      if (err) reject(err instanceof ExchangeFailure ? err : new ExchangeFailure(`transport failure: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      else resolve(value!);
    };
    const req = https.request(endpoint, {
      method: "POST",
      agent,
      headers: { ...headers, "content-type": "application/x-www-form-urlencoded", "content-length": String(Buffer.byteLength(payload)), accept: "application/json" },
    });
    const timer = setTimeout(() => req.destroy(new ExchangeFailure(`no answer within ${timeoutMs} ms`)), timeoutMs);
    refuseNonPublicPeer(req, opts.allowLoopback);
    req.on("response", (res) => {
      const declared = Number(res.headers["content-length"] ?? 0);
      if (declared > maxBytes) return req.destroy(new ExchangeFailure(`answer over ${maxBytes} bytes`));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) return req.destroy(new ExchangeFailure(`answer over ${maxBytes} bytes`));
        chunks.push(chunk);
      });
      res.on("end", () => finish(null, { status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on("error", (err) => finish(err));
      res.on("aborted", () => finish(new ExchangeFailure("answer cut short")));
    });
    req.on("error", (err) => finish(err));
    req.end(payload);
  });
}
