// The token exchange's address guard with the test-only loopback setting OFF (the default): a token
// endpoint on loopback, by IP literal or by a DNS name that resolves to it, is refused before any request
// reaches it; non-public answers of a resolver and the address actually connected to are refused too.
// Only loopback is ever connected to here: private addresses are judged, never dialled.
import dns from "node:dns";
import https from "node:https";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startTokenServer, type TokenServer } from "../helpers/token-server";
import { isAllowedAddress } from "../../services/grants/address-guard";
import { guardedLookup, postForm, refuseNonPublicPeer } from "../../services/grants/token-exchange";
import { clientAuth } from "../../services/grants/oauth";
import { loadConfig } from "../../shared/config";
import { readFileSync } from "node:fs";

describe("address guard", () => {
  test.each([
    "0.0.0.0", "10.1.2.3", "100.64.0.1", "100.127.255.255", "127.0.0.1", "127.255.0.9", "169.254.169.254", "172.16.0.1", "172.31.255.255",
    "192.168.1.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "ff02::1",
    "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:a9fe:a9fe", "64:ff9b::10.0.0.1", "64:ff9b::7f00:1", "::127.0.0.1",
    "not-an-ip", "",
  ])("%s is refused", (address) => {
    expect(isAllowedAddress(address, false)).toBe(false);
  });

  test.each(["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.15.255.255", "172.32.0.1", "192.169.0.1", "223.255.255.255", "2606:4700:4700::1111", "2a00:1450::1", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8"])(
    "%s is allowed",
    (address) => {
      expect(isAllowedAddress(address, false)).toBe(true);
    },
  );

  test("the test-only setting lets loopback through and nothing else", () => {
    expect(["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"].map((a) => isAllowedAddress(a, true))).toEqual([true, true, true, true]);
    expect(["10.0.0.1", "192.168.0.1", "169.254.1.1", "::", "fe80::1", "fc00::1"].map((a) => isAllowedAddress(a, true))).toEqual([false, false, false, false, false, false]);
  });

  /** A resolver that answers fixed addresses, as a DNS server under someone else's control could. */
  const answering = (addresses: string[]) =>
    ((_host: string, _opts: unknown, cb: (err: Error | null, a: dns.LookupAddress[]) => void) => cb(null, addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })))) as unknown as typeof dns.lookup;
  const lookupWith = (addresses: string[], all: boolean) =>
    new Promise<{ err: (Error & { code?: string }) | null; value: unknown }>((resolve) => guardedLookup(false, answering(addresses))("token.test", { all }, (err, value) => resolve({ err: err as any, value })));

  test("a DNS answer with any private, link-local or loopback address is refused by the lookup", async () => {
    for (const answer of [["10.1.2.3"], ["93.184.216.34", "192.168.0.10"], ["169.254.169.254"], ["::1"], ["2606:4700::1", "fd00::5"]]) {
      const { err } = await lookupWith(answer, true);
      expect({ answer, code: err?.code }).toEqual({ answer, code: "ENOTPUBLIC" });
    }
    expect(await lookupWith(["93.184.216.34", "2606:4700::1"], true)).toEqual({ err: null, value: [{ address: "93.184.216.34", family: 4 }, { address: "2606:4700::1", family: 6 }] });
  });

  test("a non-public IP literal is refused before any socket is opened", async () => {
    // 0.0.0.0 and :: stand in for the private literals judged above: were the check ever to regress, a
    // dial to them stays on this machine, where a dial to 10/8 would leave it.
    for (const url of ["https://0.0.0.0/token", "https://[::]/token"]) {
      await expect(postForm(new URL(url), new URLSearchParams(), {}, { allowLoopback: false })).rejects.toThrow("the token endpoint's address is not public");
    }
  });

  test("an auth method that needs a secret without one is invalid_provider_config", () => {
    expect(() => clientAuth({ client_id: "c" }, [])).toThrow(expect.objectContaining({ type: "invalid_provider_config" }));
    expect(() => clientAuth({ client_auth_method: "client_secret_post" }, ["client_secret"])).toThrow(expect.objectContaining({ type: "invalid_provider_config" }));
    expect(clientAuth({ client_id: "c", client_auth_method: "none" }, [])).toEqual({ clientId: "c", method: "none" });
    expect(clientAuth({ client_id: "c" }, ["client_secret"])).toEqual({ clientId: "c", method: "client_secret_basic" });
  });

  test("the test-only settings are refused in release mode", () => {
    const keys = { ADMIN_TOKEN: "cat_x", STREAMS_HMAC_KEY: "ab".repeat(32), AUDIT_HMAC_KEY: "ab".repeat(32), ZONE_KEK: "cd".repeat(32) };
    expect(() => loadConfig({ ...keys, CARACAL_MODE: "stable", OAUTH_TEST_ALLOW_LOOPBACK: "true" })).toThrow(/test-only/);
    expect(() => loadConfig({ ...keys, CARACAL_MODE: "rc", OAUTH_TEST_CA_FILE: "/tmp/x.pem" })).toThrow(/test-only/);
    expect(loadConfig({ ...keys, CARACAL_MODE: "stable" }).oauthTest).toEqual({ allowLoopback: false, caPem: null });
    expect(loadConfig({ ...keys, CARACAL_MODE: "dev" }).oauthTest.allowLoopback).toBe(false);
  });
});

describe("exchange against a loopback endpoint with the setting off", () => {
  let tokens: TokenServer;
  let c: Cluster;
  beforeAll(async () => {
    tokens = await startTokenServer();
    // The CA is trusted, so only the address guard stands between the service and the endpoint.
    c = await startCluster({ processes: ["zones", "applications", "providers", "grants"], env: { OAUTH_TEST_ALLOW_LOOPBACK: "", OAUTH_TEST_CA_FILE: tokens.caFile } });
  });
  afterAll(async () => {
    await c.stop();
    await tokens.close();
  });

  test("the service runs with loopback refused", () => {
    expect((c.brokers.grants!.getLocalService("grants") as any).exchangeOptions.allowLoopback).toBe(false);
  });

  test.each([["localhost (a DNS name that resolves to loopback)", "localhost"], ["the IP literal 127.0.0.1", "127.0.0.1"]])("%s: 502 provider_token_exchange_failed, no request reaches it", async (_name, host) => {
    const post = (path: string, body: unknown) => c.http().post(path).set(c.auth()).send(body as object);
    const z = (await post("/v1/zones", { name: "ssrf " + Math.random().toString(36).slice(2, 7) })).body.id;
    const app = (await post(`/v1/zones/${z}/applications`, { name: "gw", registration_method: "managed" })).body.id;
    const config_json = { authorization_endpoint: "https://idp.example/authorize", token_endpoint: `https://${host}:${tokens.port}/token`, redirect_uri: "https://app.example/cb", client_id: "c1", allowed_token_hosts: [host], client_secret: "s3cret-value" };
    const p = (await post(`/v1/zones/${z}/providers`, { name: "oauth", kind: "oauth2_authorization_code", config_json })).body.id;
    const r = (await post(`/v1/zones/${z}/resources`, { name: "r", scopes: ["example:read"], upstream_url: "https://api.example", credential_provider_id: p, gateway_application_id: app })).body.id;
    const a = await post(`/v1/zones/${z}/provider-grants/oauth/authorize`, { user_id: "u1", resource_id: r, provider_id: p, scopes: ["example:read"] });
    expect(a.status).toBe(200);
    const before = { requests: tokens.requests.length, connections: tokens.connections() };
    const res = await c.http().get(`/v1/zones/${z}/provider-grants/oauth/callback?state=${a.body.state}&code=abc`);
    expect([res.status, res.body.error]).toEqual([502, "provider_token_exchange_failed"]);
    expect(res.body.details.detail).toMatch(/not public|non-public/);
    expect({ requests: tokens.requests.length, connections: tokens.connections() }).toEqual(before);
  });

  test("the address actually connected to is checked, whatever the lookup said", async () => {
    // A plain request with Node's own lookup (no guard), as a connection steered past the resolver check
    // would be: the socket check that postForm installs refuses it before any request byte is sent.
    const before = tokens.requests.length;
    const err = await new Promise<Error | null>((resolve) => {
      const req = https.request(`https://localhost:${tokens.port}/token`, { method: "POST", ca: readFileSync(tokens.caFile, "utf8"), agent: false });
      refuseNonPublicPeer(req, false);
      req.on("error", (e) => resolve(e));
      req.on("response", () => resolve(null));
      req.end("code=abc");
    });
    expect(err?.message).toBe("connected to a non-public address");
    expect(tokens.requests.length).toBe(before);
  });
});
