// Who is calling: the admin token the gateway authenticated, carried to services in ctx.meta.actor.
export interface Actor {
  id: string;
  name: string;
  scope: "global" | "zone";
  capability: "read" | "write";
  zone_id: string | null;
  created_by: string;
  /** The bootstrap (break-glass) identity may touch the reserved system zone and names. */
  bootstrap: boolean;
}

export const isGlobal = (actor: Actor | undefined): boolean => actor?.scope === "global";
export const isBootstrap = (actor: Actor | undefined): boolean => actor?.bootstrap === true;
