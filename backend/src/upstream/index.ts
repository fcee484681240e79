// The upstream half of the gateway: lanes toward MCP servers and the supervisor that keeps them.
export * from "./types";
export type { CommonLaneOptions, LaneStats, UpstreamLane } from "./transport";
export {
  GATEWAY_CLIENT_NAME,
  GATEWAY_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
} from "./handshake";
export type { StdioAttachment, StdioConnectorOptions, StdioLaneOptions } from "./stdio";
export { createStdioConnector, createStdioLane } from "./stdio";
export type { HttpLaneOptions } from "./http";
export { createHttpLane } from "./http";
export type { Clock, Supervisor, SupervisorOptions } from "./supervisor";
export { createSupervisor, systemClock } from "./supervisor";
