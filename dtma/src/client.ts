import type {
  ApiError,
  DeployResult,
  Health,
  Status,
  Tool,
  ToolList,
  ToolLogs,
  ToolSpec,
  WaitResult,
  WaitState,
} from "./api";

export type * from "./api";

/** A non-2xx answer from the DTMA, with its error code and the field it names. */
export class DtmaError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(`DTMA ${status} ${body.error}: ${body.message}`);
  }
}

export interface DtmaClientOptions {
  /** e.g. http://dtma:30000 */
  baseUrl: string;
  token: string;
  /** Per-request timeout (ms); long polls add their own wait. Default 30 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** Typed client of the DTMA API, for the backend and the automation service. */
export class DtmaClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: DtmaClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? fetch;
  }

  health(): Promise<Health> {
    return this.request("GET", "/health");
  }

  status(): Promise<Status> {
    return this.request("GET", "/status");
  }

  async metrics(): Promise<string> {
    const res = await this.send("GET", "/metrics");
    return res.text();
  }

  async listTools(): Promise<Tool[]> {
    return (await this.request<ToolList>("GET", "/tools")).tools;
  }

  getTool(name: string): Promise<Tool> {
    return this.request("GET", `/tools/${encodeURIComponent(name)}`);
  }

  /** Deploys or updates a tool; `created` is true on 201 (a new tool). */
  async deployTool(name: string, spec: ToolSpec): Promise<DeployResult & { created: boolean }> {
    const res = await this.send("PUT", `/tools/${encodeURIComponent(name)}`, spec);
    const body = (await res.json()) as DeployResult;
    return { ...body, created: res.status === 201 };
  }

  async removeTool(name: string): Promise<void> {
    await this.send("DELETE", `/tools/${encodeURIComponent(name)}`);
  }

  startTool(name: string): Promise<Tool> {
    return this.request("POST", `/tools/${encodeURIComponent(name)}/start`);
  }

  stopTool(name: string): Promise<Tool> {
    return this.request("POST", `/tools/${encodeURIComponent(name)}/stop`);
  }

  restartTool(name: string): Promise<Tool> {
    return this.request("POST", `/tools/${encodeURIComponent(name)}/restart`);
  }

  toolLogs(name: string, opts: { tail?: number; since?: number | string } = {}): Promise<ToolLogs> {
    const q = new URLSearchParams();
    if (opts.tail !== undefined) q.set("tail", String(opts.tail));
    if (opts.since !== undefined) q.set("since", String(opts.since));
    return this.request("GET", `/tools/${encodeURIComponent(name)}/logs?${q.toString()}`);
  }

  /** Long-polls until the tool reaches `state` (timeout in seconds, at most 60). */
  waitForTool(name: string, state: WaitState, timeoutSeconds = 30): Promise<WaitResult> {
    const q = new URLSearchParams({ state, timeout: String(timeoutSeconds) });
    return this.request(
      "GET",
      `/tools/${encodeURIComponent(name)}/wait?${q.toString()}`,
      undefined,
      timeoutSeconds * 1000,
    );
  }

  private async request<T>(method: string, path: string, body?: unknown, extraMs = 0): Promise<T> {
    const res = await this.send(method, path, body, extraMs);
    return (await res.json()) as T;
  }

  private async send(method: string, path: string, body?: unknown, extraMs = 0): Promise<Response> {
    const res = await this.fetchImpl(this.baseUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${this.options.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout((this.options.timeoutMs ?? 30_000) + extraMs),
    });
    if (!res.ok) {
      const text = await res.text();
      let parsed: ApiError;
      try {
        parsed = JSON.parse(text) as ApiError;
      } catch {
        parsed = { error: "http_error", message: text.slice(0, 500) };
      }
      throw new DtmaError(res.status, parsed);
    }
    return res;
  }
}
