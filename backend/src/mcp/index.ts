// The agent-facing MCP edge of the toolbox gateway. The app creates one gateway from its
// dependencies, adds its routes to the router, reports `stats()` on /status and calls
// `closeAll()` at shutdown (before shutting the supervisors down).
import type { McpGateway, McpStats } from "./gateway";
import { createMcpGateway } from "./gateway";

export { createMcpGateway };
export type { McpGateway, McpStats };
export type {
  GatewayDeps,
  GatewayLimits,
  GatewayMetrics,
  GatewayServer,
  ServerDirectory,
} from "./deps";
export { LEGACY_VERSIONS, MODERN_VERSIONS, SUPPORTED_VERSIONS } from "./protocol";
