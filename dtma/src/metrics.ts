import {
  Counter,
  HttpMetrics,
  processGauges,
  renderGauges,
  type GaugeValues,
} from "@agentopia-toolboxes/servicekit/metrics";

// The DTMA's series, in the Prometheus text format servicekit writes (no prom-client: ~6-9 MB,
// docs/decisions/0005-dtma-memory-budget.md).

export class Metrics {
  readonly http = new HttpMetrics("dtma");
  readonly heartbeats = new Counter("dtma_heartbeats_total", "Heartbeats sent, by outcome.");
  readonly toolOperations = new Counter(
    "dtma_tool_operations_total",
    "Tool operations by outcome.",
  );
  private gauges: () => GaugeValues[] = () => [];

  recordRequest(method: string, route: string, status: number, seconds: number): void {
    this.http.recordRequest(method, route, status, seconds);
  }

  authFailure(reason: string): void {
    this.http.authFailure(reason);
  }

  /** Gauges read at scrape time from the latest status sample. */
  setGaugeSource(source: typeof this.gauges): void {
    this.gauges = source;
  }

  render(): string {
    let out = renderGauges([...processGauges(), ...this.gauges()]) + this.http.render();
    for (const m of [this.heartbeats, this.toolOperations]) out += m.render();
    return out;
  }
}
