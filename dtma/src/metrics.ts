import { Counter, ServiceMetrics } from "@agentopia-toolboxes/servicekit/metrics";

// The DTMA's series, in the Prometheus text format servicekit writes (no prom-client: ~6-9 MB,
// docs/decisions/0005-dtma-memory-budget.md).

export class Metrics extends ServiceMetrics {
  readonly heartbeats = this.series(
    new Counter("dtma_heartbeats_total", "Heartbeats sent, by outcome."),
  );
  readonly toolOperations = this.series(
    new Counter("dtma_tool_operations_total", "Tool operations by outcome."),
  );

  constructor() {
    super("dtma");
  }
}
