// A real HTTPS OAuth token endpoint on loopback for the grants tests, with a self-signed certificate made
// here (selfsigned) and written to a file the grants service is told to trust (OAUTH_TEST_CA_FILE).
import https from "node:https";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { IncomingMessage, ServerResponse } from "node:http";
import { generate } from "selfsigned";

export interface TokenRequest {
  path: string;
  headers: IncomingMessage["headers"];
  form: URLSearchParams;
}

export type TokenHandler = (req: TokenRequest, res: ServerResponse) => void;

export interface TokenServer {
  port: number;
  caFile: string;
  /** Every request that reached the HTTP layer (a refused connection never gets here). */
  requests: TokenRequest[];
  /** TCP connections accepted, whether or not a request followed. */
  connections: () => number;
  /** What the next requests get; by default a fresh token set per request (see `issued`). */
  handle: (h: TokenHandler | null) => void;
  /** Every access and refresh token this server handed out. */
  issued: string[];
  close: () => Promise<void>;
}

export async function startTokenServer(): Promise<TokenServer> {
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    notAfterDate: new Date(Date.now() + 24 * 3600 * 1000),
    extensions: [
      { name: "basicConstraints", cA: true },
      { name: "keyUsage", digitalSignature: true, keyCertSign: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), "caracal-token-"));
  const caFile = join(dir, "ca.pem");
  writeFileSync(caFile, pems.cert);
  const requests: TokenRequest[] = [];
  const issued: string[] = [];
  let custom: TokenHandler | null = null;
  let connections = 0;
  const fresh: TokenHandler = (_req, res) => {
    const access = "at-" + randomBytes(24).toString("base64url");
    const refresh = "rt-" + randomBytes(24).toString("base64url");
    issued.push(access, refresh);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ access_token: access, refresh_token: refresh, token_type: "Bearer", expires_in: 3600 }));
  };
  const server = https.createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = { path: req.url ?? "/", headers: req.headers, form: new URLSearchParams(Buffer.concat(chunks).toString("utf8")) };
      requests.push(r);
      (custom ?? fresh)(r, res);
    });
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    caFile,
    requests,
    connections: () => connections,
    handle: (h) => {
      custom = h;
    },
    issued,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
