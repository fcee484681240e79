import type { Tool } from "@agentopia-toolboxes/dtma/api";
import type { GatewayServer } from "../mcp/deps";
import type { JsonObject } from "../upstream/types";

/** A server as the control plane sees it: the DTMA's view of its container and the gateway's of its lane. */
export function serverView(
  tool: Tool,
  server: GatewayServer | undefined,
  sessions: number,
  tools?: { list: JsonObject[] | null; error?: string },
) {
  const lane = server?.supervisor.view();
  return {
    name: tool.name,
    image: tool.image,
    transport: tool.transport,
    isolation: tool.isolation ?? "shared",
    max_sessions: tool.max_lanes ?? null,
    network: tool.network,
    account_tool_instance_id: tool.account_tool_instance_id,
    state: tool.state,
    health: tool.health,
    resources: tool.resources,
    created_at: tool.created_at,
    started_at: tool.started_at,
    uptime_seconds: tool.uptime_seconds,
    restarts: tool.restarts,
    gateway: {
      lane: lane?.state ?? "stopped",
      failures: lane?.failures ?? 0,
      last_error: lane?.lastError ?? null,
      ready_since: lane?.readySince ?? null,
      in_flight: lane?.inFlight ?? 0,
      session_lanes: lane?.sessionLanes ?? 0,
      sessions,
    },
    ...(tools ? { tools: tools.list, ...(tools.error ? { tools_error: tools.error } : {}) } : {}),
  };
}
