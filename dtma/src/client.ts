import http from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
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
import { STARTED_AT_HEADER, STDIO_UPGRADE } from "./api";

export type * from "./api";

// node:http with a keep-alive agent rather than fetch: undici costs the backend several MB of
// its 60 MB (docs/decisions/0005-dtma-memory-budget.md), and the stdio attachment is an HTTP
// upgrade, which fetch cannot do.

/** A non-2xx answer from the DTMA, with its error code and the field it names. */
export class DtmaError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(`DTMA ${status} ${body.error}: ${body.message}`);
    this.name = "DtmaError";
  }
}

/**
 * The DTMA could not be reached or gave no answer in time (refused, reset, unknown host,
 * timeout, a broken answer). `reason` says which, without a token or a body.
 */
export class DtmaUnavailable extends Error {
  constructor(
    readonly reason: string,
    /** The socket error's code (ECONNREFUSED, ECONNRESET, ENOTFOUND, ...) or ETIMEDOUT. */
    readonly code: string,
  ) {
    super(`DTMA unavailable: ${reason}`);
    this.name = "DtmaUnavailable";
  }
}

/** An open attachment or lane: raw bytes to the tool's stdin, its stdout back. */
export interface StdioStream {
  /** Ending it closes the attachment (a lane: the process gets EOF); it ends when the tool's process exits. */
  stream: Duplex;
  /** The container's State.StartedAt when the stream opened: a new value means a new process. */
  startedAt: string | null;
}

export interface DtmaClientOptions {
  /** e.g. http://dtma:30000 */
  baseUrl: string;
  token: string;
  /**
   * How long a request may take from sending to the last byte of the answer (ms), and an
   * attach or a lane until its 101; long polls add their own wait. Default 30 s.
   */
  timeoutMs?: number;
  /** Default: a keep-alive agent of this client (see `close()`). */
  agent?: http.Agent;
}

interface Answer {
  status: number;
  body: Buffer;
}

// Fewer than the DTMA's keep-alive timeout (65 s): an idle socket is dropped here first, so a
// request never goes out on one the server is closing.
const IDLE_SOCKET_MS = 30_000;
const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE"]);

/** Typed client of the DTMA API, for the backend and the automation service. */
export class DtmaClient {
  private readonly host: string;
  private readonly port: number;
  private readonly prefix: string;
  private readonly agent: http.Agent;
  private readonly ownAgent: boolean;
  private readonly timeoutMs: number;

  constructor(private readonly options: DtmaClientOptions) {
    const url = new URL(options.baseUrl);
    if (url.protocol !== "http:") throw new TypeError("DtmaClient: baseUrl must be an http:// URL");
    this.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    this.port = Number(url.port || 80);
    this.prefix = url.pathname.replace(/\/+$/, "");
    this.ownAgent = !options.agent;
    this.agent =
      options.agent ?? new http.Agent({ keepAlive: true, maxSockets: 16, timeout: IDLE_SOCKET_MS });
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Closes the idle keep-alive sockets of the client's own agent. */
  close(): void {
    if (this.ownAgent) this.agent.destroy();
  }

  health(): Promise<Health> {
    return this.request("GET", "/health");
  }

  status(): Promise<Status> {
    return this.request("GET", "/status");
  }

  async metrics(): Promise<string> {
    return (await this.send("GET", "/metrics")).body.toString("utf8");
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
    return { ...parse<DeployResult>(res), created: res.status === 201 };
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

  /**
   * The tool's one attachment to its main process (stdio tools). Refusals are DtmaError:
   * 409 `already_attached` / `not_running`, 422 `not_stdio`, 404 `tool_not_found`.
   */
  attach(name: string): Promise<StdioStream> {
    return this.upgrade(`/tools/${encodeURIComponent(name)}/attach`);
  }

  /**
   * A process of its own in the tool's container (isolation per_session). Refusals as for
   * `attach`, plus 422 `not_per_session` and 429 `lane_limit`.
   */
  openLane(name: string): Promise<StdioStream> {
    return this.upgrade(`/tools/${encodeURIComponent(name)}/lanes`);
  }

  private async request<T>(method: string, path: string, body?: unknown, extraMs = 0): Promise<T> {
    return parse<T>(await this.send(method, path, body, extraMs));
  }

  /** One exchange; a non-2xx answer is a DtmaError, no answer in time a DtmaUnavailable. */
  private async send(method: string, path: string, body?: unknown, extraMs = 0): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let res: Answer;
    try {
      res = await this.exchange(method, path, payload, extraMs);
    } catch (err) {
      // A keep-alive socket the server closed as it was reused: the request never reached it.
      if (!(err instanceof StaleSocket) || !IDEMPOTENT.has(method)) throw unwrap(err);
      res = await this.exchange(method, path, payload, extraMs).catch((e: unknown) => {
        throw unwrap(e);
      });
    }
    if (res.status < 200 || res.status > 299) throw errorOf(res);
    return res;
  }

  private exchange(
    method: string,
    path: string,
    payload: string | undefined,
    extraMs: number,
  ): Promise<Answer> {
    const timeoutMs = this.timeoutMs + extraMs;
    return new Promise((resolve, reject) => {
      const req = http.request({
        ...this.target(method, path),
        headers: {
          authorization: `Bearer ${this.options.token}`,
          ...(payload === undefined
            ? {}
            : {
                "content-type": "application/json",
                "content-length": String(Buffer.byteLength(payload)),
              }),
        },
      });
      const settle = settler(req, timeoutMs, resolve, reject);
      let answered = false;
      req.on("response", (res) => {
        answered = true;
        readAnswer(res, settle);
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (!answered && req.reusedSocket && err.code === "ECONNRESET")
          settle.fail(new StaleSocket(unavailable(err)));
        else settle.fail(unavailable(err));
      });
      req.end(payload);
    });
  }

  private upgrade(path: string): Promise<StdioStream> {
    return new Promise((resolve, reject) => {
      const req = http.request({
        ...this.target("POST", path),
        headers: {
          authorization: `Bearer ${this.options.token}`,
          connection: "Upgrade",
          upgrade: STDIO_UPGRADE,
        },
      });
      const settle = settler<Answer>(
        req,
        this.timeoutMs,
        (answer) => {
          // A refusal; a 2xx without the upgrade is no attachment either.
          if (answer.status >= 200 && answer.status < 300)
            reject(new DtmaUnavailable(`answered ${answer.status} without the upgrade`, "EPROTO"));
          else reject(errorOf(answer));
        },
        reject,
      );
      req.on("upgrade", (res, socket: Socket, head: Buffer) => {
        if (res.headers.upgrade?.toLowerCase() !== STDIO_UPGRADE) {
          socket.destroy();
          settle.fail(
            new DtmaUnavailable(`answered the upgrade with '${res.headers.upgrade}'`, "EPROTO"),
          );
          return;
        }
        settle.done();
        // The agent's idle timeout no longer applies: the stream lives as long as the tool.
        socket.setTimeout(0);
        socket.setNoDelay(true);
        if (head.length) socket.unshift(head);
        const startedAt = res.headers[STARTED_AT_HEADER];
        resolve({ stream: socket, startedAt: typeof startedAt === "string" ? startedAt : null });
      });
      req.on("response", (res) => readAnswer(res, settle));
      req.on("error", (err) => settle.fail(unavailable(err)));
      req.end();
    });
  }

  private target(method: string, path: string): http.RequestOptions {
    return {
      agent: this.agent,
      host: this.host,
      port: this.port,
      method,
      path: this.prefix + path,
    };
  }
}

interface Settle<T> {
  ok(value: T): void;
  fail(err: unknown): void;
  /** Settled elsewhere (the upgrade): only stops the timer. */
  done(): void;
}

/** Settles once, and destroys the request when no answer came within `timeoutMs`. */
function settler<T>(
  req: http.ClientRequest,
  timeoutMs: number,
  resolve: (value: T) => void,
  reject: (err: unknown) => void,
): Settle<T> {
  let settled = false;
  const timer = setTimeout(() => {
    const err = new DtmaUnavailable(`no answer within ${timeoutMs} ms`, "ETIMEDOUT");
    settle.fail(err);
    req.destroy(err);
  }, timeoutMs);
  const end = () => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    return true;
  };
  const settle: Settle<T> = {
    ok: (value) => end() && resolve(value),
    fail: (err) => end() && reject(err),
    done: () => void end(),
  };
  return settle;
}

/** Reads a whole answer; one cut short is a DtmaUnavailable. */
function readAnswer(res: http.IncomingMessage, settle: Settle<Answer>): void {
  const chunks: Buffer[] = [];
  res.on("data", (c: Buffer) => chunks.push(c));
  res.on("end", () => settle.ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
  res.on("error", (err) => settle.fail(unavailable(err)));
  res.on("close", () => {
    if (!res.complete) settle.fail(new DtmaUnavailable("the answer was cut short", "ECONNRESET"));
  });
}

class StaleSocket extends Error {
  constructor(override readonly cause: DtmaUnavailable) {
    super(cause.message);
  }
}

const unwrap = (err: unknown): unknown => (err instanceof StaleSocket ? err.cause : err);

/** The socket error as a DtmaUnavailable (Node's messages name the address, never a header). */
function unavailable(err: unknown): DtmaUnavailable {
  if (err instanceof DtmaUnavailable) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e.code ?? "EUNKNOWN";
  return new DtmaUnavailable(e.message || code, code);
}

function errorOf(res: Answer): DtmaError {
  const text = res.body.toString("utf8");
  let parsed: ApiError;
  try {
    parsed = JSON.parse(text) as ApiError;
    if (typeof parsed?.error !== "string") throw new Error("not an error body");
  } catch {
    parsed = { error: "http_error", message: text.slice(0, 500) };
  }
  return new DtmaError(res.status, parsed);
}

function parse<T>(res: Answer): T {
  try {
    return JSON.parse(res.body.toString("utf8")) as T;
  } catch {
    throw new DtmaUnavailable(`answered ${res.status} with a body that is not JSON`, "EPROTO");
  }
}
