// The entry formats of docs/runtime-streams.md: parsing rules, and the documented examples' signatures.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Malformed, parseAgentEntry, parseChallengeEntry, parseSessionEntry, compareEntryIds } from "../../services/sessions/entries";
import { sign } from "../../shared/signing";
import { csvCell, csvLine } from "../../services/sessions/csv";

const key = Buffer.from("0123456789abcdef".repeat(4), "hex");
const reason = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    if (err instanceof Malformed) return err.reason;
    throw err;
  }
  return null;
};

describe("docs/runtime-streams.md examples", () => {
  const doc = readFileSync(join(__dirname, "../../docs/runtime-streams.md"), "utf8");
  test.each([
    ["caracal.sessions.lifecycle", { event: "created", zone_id: "z1", session_id: "s1", session_type: "user", subject_id: "user-42", parent_id: "s0", created_at: "2026-05-01T10:00:00.000Z", authenticated_at: "2026-05-01T09:59:58.000Z", expires_at: "2026-05-01T11:00:00.000Z", claims_json: '{"amr":["pwd"]}', kid: "k1" }],
    ["caracal.agents.lifecycle", { event: "spawn", zone_id: "z1", agent_session_id: "a2", application_id: "app-7", parent_id: "a1", subject_session_id: "s1", lifecycle: "task", labels: '["refund-worker","eu"]', ttl_seconds: "900", max_children: "10", spawned_at: "2026-05-01T10:00:05.000Z", kid: "k1" }],
    ["caracal.stepup.challenges", { event: "created", zone_id: "z1", challenge_id: "c1", session_id: "s1", challenge_type: "human_approval", metadata_json: '{"requested_scopes":["payments:write"],"resources":["resource://payments"]}', created_at: "2026-05-01T10:01:00.000Z", expires_at: "2026-05-01T10:31:00.000Z", kid: "k1" }],
  ])("the %s example's _sig is the one the page shows, and it parses", (stream, fields) => {
    expect(doc).toContain(`_sig ${sign(key, stream, fields)}`);
    const parse = { "caracal.sessions.lifecycle": parseSessionEntry, "caracal.agents.lifecycle": parseAgentEntry, "caracal.stepup.challenges": parseChallengeEntry }[stream]!;
    expect(parse("1777629600000-0", fields)).toMatchObject({ zone_id: "z1" });
  });
});

describe("parsing", () => {
  test("a session created: defaults from created_at and the entry time", () => {
    const s = parseSessionEntry("1777629600000-0", { event: "created", zone_id: "z", session_id: "s", session_type: "user", expires_at: "2026-05-01T11:00:00Z" });
    expect(s).toMatchObject({ subject_id: null, parent_id: null, claims_json: null });
    if (s.event !== "created") throw new Error("created expected");
    expect(s.created_at.getTime()).toBe(1777629600000);
    expect(s.authenticated_at.getTime()).toBe(1777629600000);
  });

  test.each([
    [{ event: "created", zone_id: "z", session_id: "s", session_type: "user" }, "malformed:expires_at"],
    [{ event: "created", zone_id: "z", session_id: "s", session_type: "user", expires_at: "2026-05-01T11:00:00+02:00" }, "malformed:expires_at"],
    [{ event: "created", zone_id: "z z", session_id: "s", session_type: "user", expires_at: "2026-05-01T11:00:00Z" }, "malformed:zone_id"],
    [{ event: "revoked", zone_id: "z" }, "malformed:session_id"],
    [{ zone_id: "z", session_id: "s" }, "malformed:event"],
    [{ event: "deleted", zone_id: "z", session_id: "s" }, "unknown_event:deleted"],
  ])("session entry %j → %s", (fields, expected) => {
    expect(reason(() => parseSessionEntry("1-0", fields as Record<string, string>))).toBe(expected);
  });

  test("agent spawn: labels as a JSON array (deduplicated), parent_id \"null\" is no parent, defaults", () => {
    const a = parseAgentEntry("1-0", { event: "spawn", zone_id: "z", agent_session_id: "a", application_id: "app", parent_id: "null", labels: '["x","y","x"]' });
    expect(a).toMatchObject({ parent_id: null, labels: ["x", "y"], lifecycle: "task", ttl_seconds: 3600, max_children: 10 });
    expect(reason(() => parseAgentEntry("1-0", { event: "spawn", zone_id: "z", agent_session_id: "a", application_id: "app", labels: '["a b"]' }))).toBe("malformed:labels");
    expect(reason(() => parseAgentEntry("1-0", { event: "spawn", zone_id: "z", agent_session_id: "a", application_id: "app", labels: JSON.stringify(Array.from({ length: 33 }, (_, i) => `l${i}`)) }))).toBe("malformed:labels");
    expect(reason(() => parseAgentEntry("1-0", { event: "spawn", zone_id: "z", agent_session_id: "a", application_id: "app", ttl_seconds: "-1" }))).toBe("malformed:ttl_seconds");
    expect(reason(() => parseAgentEntry("1-0", { event: "spawn", zone_id: "z", agent_session_id: "a", application_id: "app", lifecycle: "daemon" }))).toBe("malformed:lifecycle");
  });

  test("challenge created: TTL by type, session_id empty when absent; satisfied needs its approver", () => {
    const h = parseChallengeEntry("1-0", { event: "created", zone_id: "z", challenge_id: "c", challenge_type: "human_approval", created_at: "2026-05-01T10:00:00.000Z" });
    if (h.event !== "created") throw new Error("created expected");
    expect(h.session_id).toBe("");
    expect(h.expires_at.toISOString()).toBe("2026-05-01T10:30:00.000Z");
    const m = parseChallengeEntry("1-0", { event: "created", zone_id: "z", challenge_id: "c", challenge_type: "mfa", created_at: "2026-05-01T10:00:00.000Z" });
    if (m.event !== "created") throw new Error("created expected");
    expect(m.expires_at.toISOString()).toBe("2026-05-01T10:05:00.000Z");
    expect(reason(() => parseChallengeEntry("1-0", { event: "satisfied", zone_id: "z", challenge_id: "c" }))).toBe("malformed:approver_subject_id");
    expect(reason(() => parseChallengeEntry("1-0", { event: "created", zone_id: "z", challenge_id: "c", challenge_type: "sms" }))).toBe("malformed:challenge_type");
  });

  test("stream ids compare by time, then sequence", () => {
    expect(compareEntryIds("5-0", "10-0")).toBeLessThan(0);
    expect(compareEntryIds("10-2", "10-10")).toBeLessThan(0);
    expect(compareEntryIds("10-1", "10-1")).toBe(0);
    expect(compareEntryIds("11-0", "0-0")).toBeGreaterThan(0);
  });
});

describe("CSV cells", () => {
  test("null empty, arrays space-joined, quoting of comma, quote, CR and LF; CRLF line ends", () => {
    expect(csvLine([null, "a", ["voice", "worker"], "Son, of Anton", 'say "hi"', "two\nlines", 3])).toBe(',a,voice worker,"Son, of Anton","say ""hi""","two\nlines",3\r\n');
    expect(csvCell("plain")).toBe("plain");
    expect(csvCell("cr\r")).toBe('"cr\r"');
  });
});
