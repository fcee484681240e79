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

/** One series of a counter: the hot path keeps it and adds to `value`, no labels per request. */
export interface CounterCell {
  value: number;
}

class Counter {
  private readonly values = new Map<string, CounterCell>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  /** The series for these labels, created at 0 on first use; the same object every time. */
  cell(labels: Labels = {}): CounterCell {
    const k = key(labels);
    let c = this.values.get(k);
    if (!c) this.values.set(k, (c = { value: 0 }));
    return c;
  }
  inc(labels: Labels = {}, by = 1): void {
    this.cell(labels).value += by;
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels))?.value ?? 0;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const [k, c] of this.values) out += `${this.name}${k ? `{${k}}` : ""} ${c.value}\n`;
    return out;
  }
}

/** One series of a histogram; `counts[i]` holds the observations that fell in bucket i only. */
export class HistogramSeries {
  readonly counts = BUCKETS.map(() => 0);
  sum = 0;
  count = 0;
  observe(seconds: number): void {
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]) i++;
    if (i < BUCKETS.length) this.counts[i] += 1;
    this.sum += seconds;
    this.count += 1;
  }
}

class Histogram {
  private readonly series = new Map<string, HistogramSeries>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  /** The series for these labels; the same object every time. */
  seriesFor(labels: Labels): HistogramSeries {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = new HistogramSeries()));
    return s;
  }
  observe(labels: Labels, seconds: number): void {
    this.seriesFor(labels).observe(seconds);
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      let cumulative = 0;
      BUCKETS.forEach((b, i) => {
        cumulative += s.counts[i];
        out += `${this.name}_bucket{${sep}le="${b}"} ${cumulative}\n`;
      });
      out += `${this.name}_bucket{${sep}le="+Inf"} ${s.count}\n`;
      out += `${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}\n${this.name}_count${k ? `{${k}}` : ""} ${s.count}\n`;
    }
    return out;
  }
}

/** The counter cell and histogram series of one route, by method and status. */
interface RouteSeries {
  duration: HistogramSeries;
  requests: Map<string, Map<number, CounterCell>>;
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
  private readonly routes = new Map<string, RouteSeries>();
  private gauges: () => { name: string; help: string; values: [Labels, number][] }[] = () => [];

  /**
   * Counts one answered request: map look-ups only once a (route, method, status) was seen,
   * no label objects or keys per request.
   */
  recordRequest(method: string, route: string, status: number, seconds: number): void {
    let r = this.routes.get(route);
    if (!r) {
      r = { duration: this.httpDuration.seriesFor({ route }), requests: new Map() };
      this.routes.set(route, r);
    }
    let byStatus = r.requests.get(method);
    if (!byStatus) r.requests.set(method, (byStatus = new Map<number, CounterCell>()));
    let cell = byStatus.get(status);
    if (!cell) {
      cell = this.httpRequests.cell({ method, route, status: String(status) });
      byStatus.set(status, cell);
    }
    cell.value += 1;
    r.duration.observe(seconds);
  }

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
