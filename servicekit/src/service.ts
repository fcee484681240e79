// A service's process, the same for the DTMA and the backend: the configuration read once (a bad
// one stops the process with its one line), the logger, the app started, and stopped on SIGTERM
// or SIGINT, the process exiting when the stop is done or after STOP_DEADLINE_MS anyway.
import { readFileSync } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { ConfigError, type Env } from "./env";

/** What the process starts and stops. */
export interface ServiceApp {
  start(): Promise<unknown>;
  stop(): Promise<void>;
}

export interface ServiceDefinition<C> {
  /** The service's package directory: its package.json gives the version. */
  packageDir: string;
  /** Parses the environment; a ConfigError's message is printed and the process exits 1. */
  loadConfig(env: Env): C;
  createLogger(config: C): Logger;
  createApp(deps: { config: C; log: Logger; version: string }): ServiceApp;
}

/** How long a stop may take before the process exits with 1 anyway. */
const STOP_DEADLINE_MS = 15_000;

export function runService<C>(def: ServiceDefinition<C>): void {
  let config: C;
  try {
    config = def.loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  const log = def.createLogger(config);
  const pkg = JSON.parse(readFileSync(path.join(def.packageDir, "package.json"), "utf8")) as {
    version: string;
  };
  const app = def.createApp({ config, log, version: pkg.version });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), STOP_DEADLINE_MS);
    force.unref();
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));

  app.start().catch((err: unknown) => {
    log.fatal({ err }, "could not start");
    process.exit(1);
  });
}
