import pino from "pino";
import type { Logger } from "pino";

/** Paths every service redacts, should an object carrying them be logged whole by mistake. */
const REDACTED = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "secrets",
  "*.secrets",
  "token",
  "*.token",
];

// JSON logs on stdout. Secrets never reach a log call; the redaction is a second line of
// defence for headers and fields should an object be logged whole by mistake.
export function createLogger(
  service: string,
  level: string,
  opts: { redact?: string[]; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      level,
      base: { service },
      redact: { paths: [...REDACTED, ...(opts.redact ?? [])], censor: "[redacted]" },
    },
    opts.destination,
  );
}

export type { Logger };
