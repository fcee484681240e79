import http from "node:http";
import type { Socket } from "node:net";
import { StringDecoder } from "node:string_decoder";

// A small client for the Docker Engine API over its unix socket. dockerode (with ssh2 and
// docker-modem) costs ~28 MB of resident memory on Node 24; this needs node:http only
// (docs/decisions/0005-dtma-memory-budget.md).

const API = "/v1.41";

export class DockerError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Idle time of the socket before the request is abandoned. */
  timeoutMs?: number;
  /** Ends the request when aborted (the daemon cancels what it was doing for it). */
  signal?: AbortSignal;
  /** Default: the API's keep-alive pool. */
  agent?: http.Agent | false;
}

/** A pull that did not finish within its deadline. */
export class PullTimeout extends Error {}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Created: number;
  Labels: Record<string, string>;
}

export interface ContainerInspect {
  Id: string;
  Name: string;
  Created: string;
  RestartCount: number;
  State: {
    Status: string;
    Running: boolean;
    ExitCode: number;
    StartedAt: string;
    Health?: { Status: string };
  };
  Config: {
    Image: string;
    Labels: Record<string, string> | null;
    Tty: boolean;
    Entrypoint: string[] | null;
    Cmd: string[] | null;
    /** `K=V` entries, the image's and the deploy's. */
    Env: string[] | null;
    User?: string;
  };
  HostConfig: Record<string, unknown>;
  NetworkSettings: { Networks: Record<string, unknown> };
}

export interface DockerEngineOptions {
  /** Pulls at once, on connections of their own (default 2): the API's pool never waits on a registry. */
  maxPulls?: number;
}

export class DockerEngine {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  /** Pulls wait here for one of their own connections, never for the API's. */
  private readonly pullAgent: http.Agent;

  constructor(
    private readonly socketPath: string,
    opts: DockerEngineOptions = {},
  ) {
    this.pullAgent = new http.Agent({ keepAlive: false, maxSockets: opts.maxPulls ?? 2 });
  }

  close(): void {
    this.agent.destroy();
    this.pullAgent.destroy();
  }

  /** Sends a request and buffers the answer; rejects on transport errors only. */
  raw(
    method: string,
    path: string,
    opts: RequestOptions = {},
  ): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const res = this.open(method, path, opts);
      res.then((r) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
        r.on("error", reject);
      }, reject);
    });
  }

  /** Opens a request and hands back the response stream (pulls, logs). */
  open(method: string, path: string, opts: RequestOptions = {}): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: opts.agent ?? this.agent,
          method,
          path: API + path,
          headers: {
            ...(payload ? { "content-type": "application/json" } : {}),
            ...opts.headers,
          },
          timeout: opts.timeoutMs ?? 30_000,
          ...(opts.signal ? { signal: opts.signal } : {}),
        },
        resolve,
      );
      req.on("timeout", () => req.destroy(new Error(`docker ${method} ${path} timed out`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** JSON request; a 4xx/5xx answer becomes a DockerError carrying the daemon's message. */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const { status, body } = await this.raw(method, path, opts);
    if (status >= 400) throw new DockerError(status, daemonMessage(body));
    if (body.length === 0) return undefined as T;
    return JSON.parse(body.toString("utf8")) as T;
  }

  /**
   * Docker's event stream for containers with these labels: one JSON object per line, for as
   * long as it stays open. Its own connection (never the pool's) and no idle timeout.
   */
  async events(labels: string[], signal: AbortSignal): Promise<http.IncomingMessage> {
    const filters = encodeURIComponent(JSON.stringify({ type: ["container"], label: labels }));
    const res = await this.open("GET", `/events?filters=${filters}`, {
      agent: false,
      timeoutMs: 0,
      signal,
    });
    if ((res.statusCode ?? 0) < 400) return res;
    res.resume();
    throw new DockerError(res.statusCode ?? 500, "the daemon refused the event stream");
  }

  /**
   * Whether the daemon answers /_ping through the API's own pool within `timeoutMs`: "stalled"
   * when it (or a free connection) does not come in time, "unreachable" when it fails.
   */
  async responsive(timeoutMs: number): Promise<"ok" | "stalled" | "unreachable"> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const { status } = await this.raw("GET", "/_ping", { timeoutMs, signal });
      return status === 200 ? "ok" : "unreachable";
    } catch {
      return signal.aborted ? "stalled" : "unreachable";
    }
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.raw("GET", "/_ping", { timeoutMs: 3000 })).status === 200;
    } catch {
      return false;
    }
  }

  version(): Promise<{ Version: string; ApiVersion: string }> {
    return this.json("GET", "/version", { timeoutMs: 5000 });
  }

  info(): Promise<{ Containers: number; ContainersRunning: number }> {
    return this.json("GET", "/info", { timeoutMs: 10_000 });
  }

  listContainers(labels: string[]): Promise<ContainerSummary[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: labels }));
    return this.json("GET", `/containers/json?all=1&filters=${filters}`);
  }

  /** Inspects a container; null when it does not exist. */
  async inspectContainer(id: string): Promise<ContainerInspect | null> {
    try {
      return await this.json<ContainerInspect>("GET", `/containers/${encodeURIComponent(id)}/json`);
    } catch (err) {
      if (err instanceof DockerError && err.statusCode === 404) return null;
      throw err;
    }
  }

  async createContainer(name: string, body: unknown): Promise<string> {
    const res = await this.json<{ Id: string }>(
      "POST",
      `/containers/create?name=${encodeURIComponent(name)}`,
      { body },
    );
    return res.Id;
  }

  /** Start/stop/restart; 304 (already in that state) is success. */
  async containerAction(id: string, action: "start" | "stop" | "restart"): Promise<void> {
    const query = action === "start" ? "" : "?t=10";
    const { status, body } = await this.raw(
      "POST",
      `/containers/${encodeURIComponent(id)}/${action}${query}`,
      { timeoutMs: 60_000 },
    );
    if (status >= 400) throw new DockerError(status, daemonMessage(body));
  }

  async removeContainer(id: string): Promise<void> {
    const { status, body } = await this.raw(
      "DELETE",
      `/containers/${encodeURIComponent(id)}?force=1&v=1`,
      { timeoutMs: 60_000 },
    );
    if (status >= 400 && status !== 404) throw new DockerError(status, daemonMessage(body));
  }

  renameContainer(id: string, name: string): Promise<void> {
    return this.json(
      "POST",
      `/containers/${encodeURIComponent(id)}/rename?name=${encodeURIComponent(name)}`,
    );
  }

  /**
   * A container's log as Docker's multiplexed stream (tools never have a TTY), read as it
   * arrives; `query` picks the streams, `tail` and `since`. Ends with the log; `signal` drops it.
   */
  async logStream(id: string, query: string, signal: AbortSignal): Promise<http.IncomingMessage> {
    const res = await this.open("GET", `/containers/${encodeURIComponent(id)}/logs?${query}`, {
      timeoutMs: 60_000,
      signal,
    });
    if ((res.statusCode ?? 0) < 400) return res;
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    throw new DockerError(res.statusCode ?? 500, daemonMessage(Buffer.concat(chunks)));
  }

  /**
   * Attaches to a running container's stdin and stdout (not stderr: the json-file log keeps
   * it). The socket carries what is written to the process's stdin one way and Docker's framed
   * stdout the other; it ends when the process exits.
   */
  attachStdio(id: string): Promise<Socket> {
    return this.hijack(
      `/containers/${encodeURIComponent(id)}/attach?stream=1&stdin=1&stdout=1&stderr=0`,
    );
  }

  /**
   * Starts `cmd` as an extra process in a running container (its user, environment, working
   * dir, cgroup, root and network) with stdin and stdout attached; the socket ends when the
   * process exits, and ending its write side closes the process's stdin.
   */
  async execStdio(id: string, cmd: string[]): Promise<Socket> {
    const { Id } = await this.json<{ Id: string }>(
      "POST",
      `/containers/${encodeURIComponent(id)}/exec`,
      {
        body: { AttachStdin: true, AttachStdout: true, AttachStderr: false, Tty: false, Cmd: cmd },
      },
    );
    return this.hijack(`/exec/${encodeURIComponent(Id)}/start`, { Detach: false, Tty: false });
  }

  /**
   * The Engine API's hijacked connection: an HTTP upgrade after which the socket is the raw
   * stream. Its own connection (not the keep-alive pool, whose 32 sockets it would hold), and
   * the timeout covers the answer only: the stream itself lives as long as the process.
   */
  private hijack(path: string, body?: unknown): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request({
        socketPath: this.socketPath,
        agent: false,
        method: "POST",
        path: API + path,
        headers: {
          connection: "Upgrade",
          upgrade: "tcp",
          ...(payload ? { "content-type": "application/json" } : {}),
        },
        timeout: 10_000,
      });
      req.on("timeout", () => req.destroy(new Error(`docker POST ${path} timed out`)));
      req.on("upgrade", (_res, socket: Socket, head: Buffer) => {
        // The stream may break before its user listens: never an unhandled 'error'.
        socket.on("error", () => socket.destroy());
        socket.setTimeout(0);
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          reject(new DockerError(res.statusCode ?? 500, daemonMessage(Buffer.concat(chunks)))),
        );
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** The image's configuration, or null when the daemon does not have it. */
  async inspectImage(image: string): Promise<{ Config: { User?: string } | null } | null> {
    try {
      return await this.json("GET", `/images/${encodeURIComponent(image)}/json`);
    } catch (err) {
      if (err instanceof DockerError && err.statusCode === 404) return null;
      throw err;
    }
  }

  /**
   * Pulls an image within `timeoutMs` (waiting for a pull connection included). The daemon
   * answers 200 and reports failures inside the progress stream, which is read line by line
   * to its end; the last error is thrown with the daemon's words, which the caller must not
   * pass on (they can quote the registry's answer).
   */
  async pullImage(image: string, authHeader: string | undefined, timeoutMs: number): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const res = await this.open("POST", `/images/create?fromImage=${encodeURIComponent(image)}`, {
        headers: authHeader ? { "x-registry-auth": authHeader } : {},
        timeoutMs,
        signal,
        agent: this.pullAgent,
      });
      const decoder = new StringDecoder("utf8");
      let partial = "";
      let error: string | undefined;
      const scan = (text: string, last: boolean) => {
        const lines = (partial + text).split("\n");
        partial = last ? "" : lines.pop()!;
        for (const line of lines) error = progressError(line) ?? error;
      };
      for await (const chunk of res) {
        scan(decoder.write(chunk as Buffer), false);
        // A progress line is short; an endless one is not progress.
        if (partial.length > 65_536) partial = "";
      }
      scan(decoder.end(), true);
      if ((res.statusCode ?? 0) >= 400) throw new DockerError(res.statusCode ?? 500, error ?? "");
      if (error !== undefined) throw new DockerError(500, error);
    } catch (err) {
      if (signal.aborted)
        throw new PullTimeout(`pulling ${image} took longer than ${timeoutMs} ms`);
      throw err;
    }
  }

  /** A network's subnets and attached containers, or null when it does not exist. */
  async inspectNetwork(
    name: string,
  ): Promise<{ Id: string; IPAM: { Config: { Subnet?: string }[] | null } } | null> {
    try {
      return await this.json("GET", `/networks/${encodeURIComponent(name)}`);
    } catch (err) {
      if (err instanceof DockerError && err.statusCode === 404) return null;
      throw err;
    }
  }

  /** Every network of the daemon with its subnets (`labels` narrows them). */
  listNetworks(
    labels: string[] = [],
  ): Promise<{ Name: string; IPAM: { Config: { Subnet?: string }[] | null } }[]> {
    const filters = encodeURIComponent(JSON.stringify(labels.length ? { label: labels } : {}));
    return this.json("GET", `/networks?filters=${filters}`);
  }

  /** A bridge network; `subnet` undefined lets Docker choose. 409: it exists already. */
  async createNetwork(
    name: string,
    labels: Record<string, string>,
    subnet?: string,
  ): Promise<void> {
    await this.json("POST", "/networks/create", {
      body: {
        Name: name,
        Driver: "bridge",
        CheckDuplicate: true,
        Labels: labels,
        ...(subnet ? { IPAM: { Driver: "default", Config: [{ Subnet: subnet }] } } : {}),
      },
    });
  }

  /** Connects a container to a network; already connected is success. */
  async connectNetwork(network: string, container: string): Promise<void> {
    const { status, body } = await this.raw(
      "POST",
      `/networks/${encodeURIComponent(network)}/connect`,
      { body: { Container: container } },
    );
    const message = daemonMessage(body);
    if (status >= 400 && !/already exists|already attached/i.test(message))
      throw new DockerError(status, message);
  }

  /** Disconnects a container (forced); not connected, or gone, is success. */
  async disconnectNetwork(network: string, container: string): Promise<void> {
    const { status, body } = await this.raw(
      "POST",
      `/networks/${encodeURIComponent(network)}/disconnect`,
      { body: { Container: container, Force: true } },
    );
    if (status >= 400 && status !== 404) {
      const message = daemonMessage(body);
      if (!/is not connected|not found|no such/i.test(message))
        throw new DockerError(status, message);
    }
  }

  /** Removes a network; one that does not exist is success. */
  async removeNetwork(name: string): Promise<void> {
    const { status, body } = await this.raw("DELETE", `/networks/${encodeURIComponent(name)}`);
    if (status >= 400 && status !== 404) throw new DockerError(status, daemonMessage(body));
  }
}

/** The error a pull progress line (or the daemon's JSON error answer) reports, if any. */
function progressError(line: string): string | undefined {
  if (!line.trim()) return undefined;
  try {
    const event = JSON.parse(line) as {
      error?: string;
      message?: string;
      errorDetail?: { message?: string };
    };
    if (event.error) return event.errorDetail?.message ?? event.error;
    if (typeof event.message === "string" && !("status" in event)) return event.message;
  } catch {
    // not a progress line
  }
  return undefined;
}

function daemonMessage(body: Buffer): string {
  const text = body.toString("utf8");
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.trim() || "docker daemon error";
}
