import type { Pool } from "pg";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  registry: Registry;
  operationFinished(kind: string, outcome: "succeeded" | "failed", seconds: number): void;
  heartbeat(): void;
}

/** A registry per app instance (no global default), so tests can build several apps. */
export function createMetrics(pool: Pool): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const finished = new Counter({
    name: "automation_operations_total",
    help: "Operations that reached a final state",
    labelNames: ["kind", "outcome"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "automation_operation_attempt_seconds",
    help: "Duration of the final attempt of an operation",
    labelNames: ["kind"],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200],
    registers: [registry],
  });
  const heartbeats = new Counter({
    name: "automation_heartbeats_total",
    help: "Accepted DTMA heartbeats",
    registers: [registry],
  });
  new Gauge({
    name: "automation_toolboxes",
    help: "Toolboxes by status",
    labelNames: ["status"],
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ status: string; n: number }>(
        "select status::text, count(*)::int as n from account_tool_environments group by status",
      );
      this.reset();
      for (const r of rows) this.set({ status: r.status }, r.n);
    },
  });
  return {
    registry,
    operationFinished(kind, outcome, seconds) {
      finished.inc({ kind, outcome });
      if (seconds > 0) duration.observe({ kind }, seconds);
    },
    heartbeat: () => heartbeats.inc(),
  };
}
