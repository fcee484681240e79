import path from "node:path";
import { runService } from "@agentopia-toolboxes/servicekit/service";
import { createApp } from "./app";
import { loadConfig } from "./config";
import { createLogger } from "./log";

runService({
  packageDir: path.join(__dirname, ".."),
  loadConfig,
  createLogger: (config) => createLogger(config.logLevel),
  createApp,
});
