// Prometheus text exposition for the handful of series the DTMA keeps. prom-client was
// measured at ~6-9 MB of resident memory on Node 24 (docs/decisions/0005-dtma-memory-budget.md);
// counters, gauges and one histogram in the text format need no library.

type Labels = Record<string, string>;

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function key(labels: Labels): string {
  return Object.entries(labels)
    .map(
      ([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
    )
    .join(",");
}

class Counter {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels)) ?? 0;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const [k, v] of this.values) out += `${this.name}${k ? `{${k}}` : ""} ${v}\n`;
    return out;
  }
}

class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  observe(labels: Labels, seconds: number): void {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) s.counts[i] += 1;
    s.sum += seconds;
    s.count += 1;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      BUCKETS.forEach((b, i) => (out += `${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}\n`));
      out += `${this.name}_bucket{${sep}le="+Inf"} ${s.count}\n`;
      out += `${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}\n${this.name}_count${k ? `{${k}}` : ""} ${s.count}\n`;
    }
    return out;
  }
}

export class Metrics {
  readonly httpRequests = new Counter(
    "dtma_http_requests_total",
    "HTTP requests by route and status.",
  );
  readonly httpDuration = new Histogram(
    "dtma_http_request_duration_seconds",
    "HTTP request duration by route.",
  );
  readonly authFailures = new Counter("dtma_auth_failures_total", "Refused requests by reason.");
  readonly heartbeats = new Counter("dtma_heartbeats_total", "Heartbeats sent, by outcome.");
  readonly toolOperations = new Counter(
    "dtma_tool_operations_total",
    "Tool operations by outcome.",
  );
  private gauges: () => { name: string; help: string; values: [Labels, number][] }[] = () => [];

  /** Gauges read at scrape time from the latest status sample. */
  setGaugeSource(source: typeof this.gauges): void {
    this.gauges = source;
  }

  render(): string {
    const mem = process.memoryUsage();
    let out =
      `# HELP process_resident_memory_bytes Resident memory size in bytes.\n` +
      `# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ${mem.rss}\n` +
      `# HELP nodejs_heap_used_bytes V8 heap in use.\n` +
      `# TYPE nodejs_heap_used_bytes gauge\nnodejs_heap_used_bytes ${mem.heapUsed}\n`;
    for (const g of this.gauges()) {
      out += `# HELP ${g.name} ${g.help}\n# TYPE ${g.name} gauge\n`;
      for (const [labels, v] of g.values) {
        const k = key(labels);
        out += `${g.name}${k ? `{${k}}` : ""} ${v}\n`;
      }
    }
    for (const m of [
      this.httpRequests,
      this.httpDuration,
      this.authFailures,
      this.heartbeats,
      this.toolOperations,
    ]) {
      out += m.render();
    }
    return out;
  }
}
