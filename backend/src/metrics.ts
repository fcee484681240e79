import { Counter, Histogram, ServiceMetrics } from "@agentopia-toolboxes/servicekit/metrics";
import type { GatewayMetrics } from "./mcp/deps";

const TOOL_CALL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The backend's series (Prometheus text, servicekit's writer): HTTP, the gateway, tool calls. */
export class Metrics extends ServiceMetrics implements GatewayMetrics {
  private readonly toolCalls = this.series(
    new Counter(
      "backend_tool_calls_total",
      "tools/call through the gateway, by server and outcome.",
    ),
  );
  private readonly toolCallDuration = this.series(
    new Histogram(
      "backend_tool_call_duration_seconds",
      "tools/call duration through the gateway, by server.",
      TOOL_CALL_BUCKETS,
    ),
  );
  private readonly mcpRequests = this.series(
    new Counter(
      "backend_mcp_requests_total",
      "MCP requests through the gateway, by server, method and outcome.",
    ),
  );
  private readonly sessions = this.series(
    new Counter(
      "backend_mcp_sessions_total",
      "MCP sessions opened and closed, by server, event and reason.",
    ),
  );
  private readonly rateLimitedCounter = this.series(
    new Counter("backend_rate_limited_total", "Requests refused by the per-token rate limit."),
  );

  constructor() {
    super("backend");
  }

  toolCall(server: string, outcome: string, seconds: number): void {
    this.toolCalls.inc({ server, outcome });
    this.toolCallDuration.observe({ server }, seconds);
  }

  mcpRequest(server: string, method: string, outcome: string): void {
    this.mcpRequests.inc({ server, method, outcome });
  }

  sessionOpened(server: string): void {
    this.sessions.inc({ server, event: "opened", reason: "" });
  }

  sessionClosed(server: string, reason: string): void {
    this.sessions.inc({ server, event: "closed", reason });
  }

  rateLimited(): void {
    this.rateLimitedCounter.inc();
  }
}
