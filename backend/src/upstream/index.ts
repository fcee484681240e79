// The upstream half of the gateway: lanes toward MCP servers and the supervisor that keeps them.
export * from "./types";
export type { CommonLaneOptions } from "./transport";
export { createStdioConnector, createStdioLane } from "./stdio";
export { createHttpLane } from "./http";
export { createSupervisor } from "./supervisor";
