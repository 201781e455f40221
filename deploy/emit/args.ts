// Command-line options of `npm run emit`: `--name value`, `--flag`, checked as they are read.
export class Args {
  private readonly values = new Map<string, string | true>();
  private readonly used = new Set<string>();

  constructor(argv: string[]) {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith("--")) throw new Error(`unexpected argument "${a}" (options are --name value)`);
      const eq = a.indexOf("=");
      if (eq > 2) {
        this.values.set(a.slice(2, eq), a.slice(eq + 1));
        continue;
      }
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        this.values.set(a.slice(2), next);
        i++;
      } else this.values.set(a.slice(2), true);
    }
  }

  str(name: string, fallback?: string): string {
    this.used.add(name);
    const v = this.values.get(name);
    if (v === undefined) {
      if (fallback === undefined) throw new Error(`--${name} is required`);
      return fallback;
    }
    if (v === true) throw new Error(`--${name} needs a value`);
    return v;
  }

  optional(name: string): string | undefined {
    this.used.add(name);
    const v = this.values.get(name);
    if (v === true) throw new Error(`--${name} needs a value`);
    return v;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
    return n;
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback?: T): T {
    const v = this.optional(name) ?? fallback;
    if (v === undefined || !values.includes(v as T)) throw new Error(`--${name} must be one of ${values.join(", ")}`);
    return v as T;
  }

  flag(name: string): boolean {
    this.used.add(name);
    return this.values.get(name) === true;
  }

  list(name: string): string[] {
    const v = this.optional(name);
    return v ? v.split(",").map((s) => s.trim()).filter(Boolean) : [];
  }

  /** Options given that no kind read: a typo is an error, not a silent default. */
  unused(): string[] {
    return [...this.values.keys()].filter((k) => !this.used.has(k));
  }
}
