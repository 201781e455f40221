// Names of the streams shared with the runtime, with the deployment's prefix (empty in production).
import { config } from "../config";

/** `caracal.sessions.lifecycle` → `<STREAMS_PREFIX>caracal.sessions.lifecycle`. */
export const runtimeStream = (name: string): string => config().streamsPrefix + name;
