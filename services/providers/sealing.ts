// Provider secrets are sealed with the shared AEAD helpers (shared/sealing.ts), under the zone's data key.
export { open, seal, type Sealed } from "../../shared/sealing";
