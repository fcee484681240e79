import type pino from "pino";
import type { Logger } from "pino";
import { createLogger as serviceLogger } from "@agentopia-toolboxes/servicekit/log";

/** JSON logs of the DTMA; deploy bodies' secret fields are redacted too. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return serviceLogger("dtma", level, {
    redact: ["registry_auth", "*.registry_auth"],
    ...(destination ? { destination } : {}),
  });
}
