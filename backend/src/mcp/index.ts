// The agent-facing MCP edge of the toolbox gateway. The app creates one gateway from its
// dependencies, adds its routes to the router, reports `stats()` on /status and calls
// `closeAll()` at shutdown (before shutting the supervisors down).
export { createMcpGateway, type McpGateway } from "./gateway";
