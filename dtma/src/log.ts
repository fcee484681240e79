import pino from "pino";
import type { Logger } from "pino";

// JSON logs on stdout. Secrets never reach a log call; the redaction is a second line of
// defence for headers and spec fields should an object be logged whole by mistake.
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "dtma" },
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          "secrets",
          "*.secrets",
          "registry_auth",
          "*.registry_auth",
          "token",
          "*.token",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
