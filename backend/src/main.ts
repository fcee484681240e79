import { readFileSync } from "node:fs";
import path from "node:path";
import { createLogger } from "@agentopia-toolboxes/servicekit/log";
import { createApp } from "./app";
import { ConfigError, loadConfig } from "./config";

function main(): void {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  const log = createLogger("backend", config.logLevel, {
    redact: ["registry_auth", "*.registry_auth", "token", "*.token"],
  });
  const pkg = JSON.parse(readFileSync(path.join(__dirname, "..", "package.json"), "utf8")) as {
    version: string;
  };
  const app = createApp({ config, log, version: pkg.version });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 15_000);
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

main();
