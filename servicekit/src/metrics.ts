// Prometheus text exposition without a library: prom-client was measured at ~6-9 MB of resident
// memory on Node 24 (docs/decisions/0005-dtma-memory-budget.md), and counters, gauges and
// histograms in the text format need none. The hot path keeps cells (`CounterCell`,
// `HistogramSeries`) and adds to them: no label objects or keys per request.

export type Labels = Record<string, string>;

export const DEFAULT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function labelKey(labels: Labels): string {
  return Object.entries(labels)
    .map(
      ([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
    )
    .join(",");
}

/** One series of a counter: the hot path keeps it and adds to `value`. */
export interface CounterCell {
  value: number;
}

export interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, CounterCell>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  /** The series for these labels, created at 0 on first use; the same object every time. */
  cell(labels: Labels = {}): CounterCell {
    const k = labelKey(labels);
    let c = this.values.get(k);
    if (!c) this.values.set(k, (c = { value: 0 }));
    return c;
  }
  inc(labels: Labels = {}, by = 1): void {
    this.cell(labels).value += by;
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels))?.value ?? 0;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const [k, c] of this.values) out += `${this.name}${k ? `{${k}}` : ""} ${c.value}\n`;
    return out;
  }
}

/** One series of a histogram; `counts[i]` holds the observations that fell in bucket i only. */
export class HistogramSeries {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(private readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(seconds: number): void {
    let i = 0;
    while (i < this.buckets.length && seconds > this.buckets[i]) i++;
    if (i < this.buckets.length) this.counts[i] += 1;
    this.sum += seconds;
    this.count += 1;
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, HistogramSeries>();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[] = DEFAULT_BUCKETS,
  ) {}
  /** The series for these labels; the same object every time. */
  seriesFor(labels: Labels): HistogramSeries {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = new HistogramSeries(this.buckets)));
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
      this.buckets.forEach((b, i) => {
        cumulative += s.counts[i];
        out += `${this.name}_bucket{${sep}le="${b}"} ${cumulative}\n`;
      });
      out += `${this.name}_bucket{${sep}le="+Inf"} ${s.count}\n`;
      out += `${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}\n${this.name}_count${k ? `{${k}}` : ""} ${s.count}\n`;
    }
    return out;
  }
}

/** Gauges computed at scrape time. */
export interface GaugeValues {
  name: string;
  help: string;
  values: [Labels, number][];
}

export function renderGauges(gauges: GaugeValues[]): string {
  let out = "";
  for (const g of gauges) {
    out += `# HELP ${g.name} ${g.help}\n# TYPE ${g.name} gauge\n`;
    for (const [labels, v] of g.values) {
      const k = labelKey(labels);
      out += `${g.name}${k ? `{${k}}` : ""} ${v}\n`;
    }
  }
  return out;
}

/** The process's own memory, as every service reports it. */
export function processGauges(): GaugeValues[] {
  const mem = process.memoryUsage();
  return [
    {
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      values: [[{}, mem.rss]],
    },
    { name: "nodejs_heap_used_bytes", help: "V8 heap in use.", values: [[{}, mem.heapUsed]] },
  ];
}

/** The counter cell and histogram series of one route, by method and status. */
interface RouteSeries {
  duration: HistogramSeries;
  requests: Map<string, Map<number, CounterCell>>;
}

/**
 * HTTP request counts and durations by route, and refused callers by reason: what the HTTP
 * server records for every service (`<prefix>_http_requests_total`, …).
 */
export class HttpMetrics {
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly authFailures: Counter;
  private readonly routes = new Map<string, RouteSeries>();

  constructor(prefix: string) {
    this.requests = new Counter(
      `${prefix}_http_requests_total`,
      "HTTP requests by route and status.",
    );
    this.duration = new Histogram(
      `${prefix}_http_request_duration_seconds`,
      "HTTP request duration by route.",
    );
    this.authFailures = new Counter(`${prefix}_auth_failures_total`, "Refused requests by reason.");
  }

  /**
   * Counts one answered request: map look-ups only once a (route, method, status) was seen,
   * no label objects or keys per request.
   */
  recordRequest(method: string, route: string, status: number, seconds: number): void {
    let r = this.routes.get(route);
    if (!r) {
      r = { duration: this.duration.seriesFor({ route }), requests: new Map() };
      this.routes.set(route, r);
    }
    let byStatus = r.requests.get(method);
    if (!byStatus) r.requests.set(method, (byStatus = new Map<number, CounterCell>()));
    let cell = byStatus.get(status);
    if (!cell) {
      cell = this.requests.cell({ method, route, status: String(status) });
      byStatus.set(status, cell);
    }
    cell.value += 1;
    r.duration.observe(seconds);
  }

  authFailure(reason: string): void {
    this.authFailures.inc({ reason });
  }

  render(): string {
    return this.requests.render() + this.duration.render() + this.authFailures.render();
  }
}

/**
 * A service's series: its process's memory, the gauges read at scrape time, its HTTP requests
 * and refused callers (what the HTTP server records), then the series the service adds with
 * `series()`, in the order it adds them.
 */
export class ServiceMetrics {
  readonly http: HttpMetrics;
  private readonly own: Metric[] = [];
  private gauges: () => GaugeValues[] = () => [];

  constructor(prefix: string) {
    this.http = new HttpMetrics(prefix);
  }

  recordRequest(method: string, route: string, status: number, seconds: number): void {
    this.http.recordRequest(method, route, status, seconds);
  }

  authFailure(reason: string): void {
    this.http.authFailure(reason);
  }

  /** Gauges read at scrape time (e.g. from the latest status sample). */
  setGaugeSource(source: () => GaugeValues[]): void {
    this.gauges = source;
  }

  render(): string {
    let out = renderGauges([...processGauges(), ...this.gauges()]) + this.http.render();
    for (const m of this.own) out += m.render();
    return out;
  }

  /** Adds one of the service's own series (rendered after the HTTP ones). */
  protected series<M extends Metric>(metric: M): M {
    this.own.push(metric);
    return metric;
  }
}
