import path from "node:path";
import { createLogger } from "@agentopia-toolboxes/servicekit/log";
import { runService } from "@agentopia-toolboxes/servicekit/service";
import { createApp } from "./app";
import { loadConfig } from "./config";

runService({
  packageDir: path.join(__dirname, ".."),
  loadConfig,
  createLogger: (config) =>
    createLogger("backend", config.logLevel, {
      redact: ["registry_auth", "*.registry_auth", "token", "*.token"],
    }),
  createApp,
});
