// The structural Rego checks of reference-policy §2.2 (in their order, first failure wins) and the validate preview.
// OPA compiles the text afterwards (opa.ts); these checks keep the reference's codes and the data-document rules.

export const SCHEMA_VERSIONS = ["2026-03-16", "2026-05-20"] as const;
export const DEFAULT_SCHEMA_VERSION = "2026-05-20";
export const INPUT_SCHEMA_VERSION = "2026-05-20";

/** The nine built-ins the reference refuses by name; OPA's capabilities (opa.ts) refuse a wider set. */
export const FORBIDDEN_BUILTINS = [
  "http.send",
  "net.lookup_ip_addr",
  "net.cidr_contains",
  "net.cidr_intersects",
  "net.cidr_expand",
  "net.cidr_merge",
  "opa.runtime",
  "rand.intn",
  "time.now_ns",
] as const;

export const OUTPUT_CONTRACT = {
  package: "caracal.authz",
  rule: "result",
  decision: ["allow", "deny"],
  evaluation_status: ["complete"],
} as const;

export interface Preview {
  package: string;
  rules: string[];
  default_result: boolean;
  decisions: string[];
  inputs_referenced: string[];
  data_referenced: string[];
}

export type CheckResult = { ok: true; preview: Preview } | { ok: false; code: string };

export const isSupportedSchemaVersion = (v: string): boolean => (SCHEMA_VERSIONS as readonly string[]).includes(v);

/** Comments removed, each string literal replaced by one space; null when a string is not closed. */
export function stripLexical(text: string): string | null {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "#") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (ch === '"') {
      i++;
      for (;;) {
        if (i >= text.length || text[i] === "\n") return null;
        if (text[i] === "\\") {
          i += 2;
          continue;
        }
        if (text[i] === '"') break;
        i++;
      }
      i++;
      out += " ";
      continue;
    }
    if (ch === "`") {
      const end = text.indexOf("`", i + 1);
      if (end === -1) return null;
      i = end + 1;
      out += " ";
      continue;
    }
    out += ch;
    i++;
  }
  return out;
}

function balanced(text: string): boolean {
  const closing: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
  const stack: string[] = [];
  for (const ch of text) {
    if (ch === "(" || ch === "[" || ch === "{") stack.push(ch);
    else if (ch in closing) {
      if (stack.pop() !== closing[ch]) return false;
    }
  }
  return stack.length === 0;
}

const IGNORED_WORDS = new Set(["package", "import", "else", "with"]);
// A rule head at the start of a line: `[default ]name` with optional `[key]`/`.field` parts (a quirk of
// the reference fixed here, so `grants["r"] := …` counts as data and `result["x"]` is caught), optional
// function arguments, then `:=`, `=` (not `==`, another reference quirk fixed), `contains`, `{` or `if`.
const RULE_HEAD = /^(?:default[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\]\n]*\]|\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*(?:\([^)\n]*\))?[ \t]*(?::=|=(?!=)|contains[ \t]|\{|if(?:[ \t]|\{|$))/;

export function collectRules(stripped: string): string[] {
  const names: string[] = [];
  for (const line of stripped.split("\n")) {
    const m = RULE_HEAD.exec(line);
    if (m && !IGNORED_WORDS.has(m[1]!)) names.push(m[1]!);
  }
  return names;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const FORBIDDEN_CALLS = FORBIDDEN_BUILTINS.map((name) => ({ name, re: new RegExp(`(?<![A-Za-z0-9_.])${escapeRegex(name)}[ \\t]*\\(`) }));

const sortedUnique = (xs: string[]) => [...new Set(xs)].sort();

/** Runs the §2.2 checks in order. */
export function checkRego(content: string): CheckResult {
  if (content.length === 0) return { ok: false, code: "empty_policy" };
  const stripped = stripLexical(content);
  if (stripped === null) return { ok: false, code: "unterminated_string" };
  if (!balanced(stripped)) return { ok: false, code: "unbalanced_delimiters" };
  const pkg = /^package[ \t]+(\S+)/m.exec(stripped);
  if (!pkg) return { ok: false, code: "missing_package_declaration" };
  const pkgName = pkg[1]!;
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(pkgName)) return { ok: false, code: "invalid_package_name" };
  const rules = collectRules(stripped);
  for (const f of FORBIDDEN_CALLS) if (f.re.test(stripped)) return { ok: false, code: `forbidden_builtin:${f.name}` };
  if (pkgName !== "caracal.authz") return { ok: false, code: "must_use_package_caracal_authz" };
  if (!/^[ \t]*#[ \t]*caracal:data-document\b/m.test(content)) return { ok: false, code: "must_be_data_document" };
  if (rules.includes("result")) return { ok: false, code: "data_document_must_not_define_result" };
  if (rules.length === 0) return { ok: false, code: "data_document_must_define_data" };

  const decisions = [...content.matchAll(/"decision"\s*:\s*"(allow|deny)"/g)].map((m) => m[1]!);
  const refs = (root: string) => [...stripped.matchAll(new RegExp(`(?<![A-Za-z0-9_.])${root}(?:\\.[A-Za-z_][A-Za-z0-9_]*)+`, "g"))].map((m) => m[0]);
  return {
    ok: true,
    preview: {
      package: "caracal.authz",
      rules: sortedUnique(rules),
      default_result: /\bdefault[ \t]+result\b/.test(stripped),
      decisions: sortedUnique(decisions),
      inputs_referenced: sortedUnique(refs("input")),
      data_referenced: sortedUnique(refs("data")),
    },
  };
}
