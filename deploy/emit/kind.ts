// What an emit kind is: a name, its options, and the entries it publishes.
import type { Args } from "./args";
import type { Emitter } from "./emitter";

export interface EmitKind {
  name: string;
  summary: string;
  usage: string;
  /** Publishes its entries; the answer is printed as JSON. */
  run(args: Args, emitter: Emitter): Promise<Record<string, unknown>>;
}
