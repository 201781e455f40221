import { canonicalBytes, sign, verify } from "../../shared/signing";

const key = Buffer.from("0123456789abcdef".repeat(4), "hex");

describe("stream signatures (reference-ops §7.4 vectors)", () => {
  test.each([
    ["audit:events", { action: "transfer", amount: "100" }, "c06ccc579e026c31a97a04f203981b236a3c88041712e9b46242e8762da23d75"],
    ["audit:events", { action: "transfer", metadata: null }, "93c82e377fc1ff7f1430549aa20cd20971150173b5996308ab84cb48d6f2683d"],
    [
      "caracal.agents.lifecycle",
      { outbox_id: "o2", event: "terminate", zone_id: "z1", agent_session_id: "a1", parent_id: null, reason: "dcr_shutdown" },
      "fdfe2b0a7070ee8910008369e9cbe0ffc325332f686c01540c16ea064b5dac63",
    ],
  ])("%s %j", (stream, values, expected) => {
    expect(sign(key, stream, values)).toBe(expected);
  });

  test("the canonical form sorts names, skips nulls and _sig, and ends every line with a newline", () => {
    expect(canonicalBytes("caracal.agents.lifecycle", { zone_id: "z1", event: "terminate", parent_id: null, _sig: "x", empty: "" })).toBe(
      "caracal.agents.lifecycle\nempty=\nevent=terminate\nzone_id=z1\n",
    );
  });

  test("key of 32 bytes 0x01 over a grant revocation, bound to the stream name", () => {
    const k = Buffer.alloc(32, 1);
    const values = { outbox_id: "o1", zone_id: "z1", session_id: "s1", reason: "grant_revoked", grant_id: "g1" };
    expect(sign(k, "caracal.sessions.revoke", values)).toBe("7d4c191f85d03cff4e8a2125012d7d75d0ef7c884850f8e354c370da20ae3933");
    const other = sign(k, "caracal.policy.invalidate", values);
    expect(other.startsWith("1cd642d3")).toBe(true);
    expect(other.endsWith("719e3e")).toBe(true);
  });

  test("verification accepts any configured key, prefers the named kid, and refuses tampering", () => {
    const old = { kid: "k0", key: Buffer.alloc(32, 7) };
    const cur = { kid: "k1", key };
    const fields: Record<string, string> = { zone_id: "z1", kid: "k0", outbox_id: "o" };
    fields._sig = sign(old.key, "s", fields);
    expect(verify([cur, old], "s", fields)).toBe(true);
    expect(verify([cur], "s", fields)).toBe(false);
    expect(verify([cur, old], "other-stream", fields)).toBe(false);
    expect(verify([cur, old], "s", { ...fields, zone_id: "z2" })).toBe(false);
    expect(verify([cur, old], "s", { ...fields, _sig: "zz" })).toBe(false);
  });
});
