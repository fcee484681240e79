// The seam between the agent-facing MCP edge (`src/mcp/`) and the MCP servers behind the
// gateway (`src/upstream/`). A lane is one initialized upstream MCP connection in the sessionful
// (legacy) era: the main process of a stdio tool reached through the DTMA's attachment, an extra
// process of a `per_session` tool, or one upstream session of an http tool. Many agent sessions
// share a lane: the lane mints its own request ids and progress tokens, so no agent's id or
// session id ever reaches a server, and it maps answers back to their caller only.

export type JsonRpcId = string | number;
export type JsonObject = Record<string, unknown>;

export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: JsonObject;
}

export interface JsonRpcNotification {
  jsonrpc: "2.0";
  method: string;
  params?: JsonObject;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** How a call ended: the server's result or error, or the gateway's error (timeout, crash, ...). */
export type CallOutcome = { result: JsonObject } | { error: JsonRpcErrorObject };

/** Error codes the gateway itself answers with (JSON-RPC's own and the implementation range). */
export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  /** The server exited or crashed with the request in flight, or the lane broke. */
  InternalError: -32603,
  /** The server is not available: stopped, crash-looping, unreachable, or over a limit. */
  Unavailable: -32000,
  /** No answer within the request timeout; the request was cancelled upstream. */
  RequestTimeout: -32001,
  /** The client cancelled the request (notification, closed stream or DELETE). */
  Cancelled: -32002,
  /** A message from the server exceeded the line cap and was dropped. */
  MessageTooLarge: -32003,
  /** 2026-07-28: headers and body disagree. */
  HeaderMismatch: -32020,
  /** 2026-07-28: the requested protocol version is not served here. */
  UnsupportedProtocolVersion: -32022,
} as const;

/** What the server answered to the gateway's own `initialize` (passed on to agents). */
export interface InitializeResult extends JsonObject {
  protocolVersion: string;
  capabilities: JsonObject;
  serverInfo: JsonObject & { name: string; version: string };
  instructions?: string;
}

export interface CallOptions {
  /** The call ends with `RequestTimeout` after this long and is cancelled upstream. */
  timeoutMs: number;
  /**
   * Aborting ends the call with `Cancelled` at once and sends `notifications/cancelled` for the
   * lane's id upstream (a client can only ever cancel its own calls).
   */
  signal?: AbortSignal;
  /** The caller's progress token: replaced by a lane-minted one upstream, restored on the way back. */
  progressToken?: string | number;
  /** `notifications/progress` params of this call, with the caller's token restored. */
  onProgress?: (params: JsonObject) => void;
}

export interface Lane {
  /** The server (tool) name. */
  readonly server: string;
  readonly initialize: InitializeResult;
  /** Calls in flight on this lane. */
  readonly inFlight: number;
  /** Resolves with the reason once the lane has ended (exit, crash, close). */
  readonly closed: Promise<string>;
  /**
   * Sends one request under a lane-minted id. Never rejects: every failure is a JSON-RPC error
   * (`ErrorCodes`), and a lane that ends answers every call in flight at once.
   * `params._meta.progressToken` is rewritten from `opts.progressToken`; `ping` never reaches
   * the server (the edge answers it).
   */
  call(method: string, params: JsonObject | undefined, opts: CallOptions): Promise<CallOutcome>;
  /**
   * Server-wide notifications: `notifications/{tools,prompts,resources}/list_changed`,
   * `notifications/resources/updated`, and on a per-session lane also `notifications/message`.
   * Returns the unsubscribe function.
   */
  onNotification(listener: (n: JsonRpcNotification) => void): () => void;
  /** `resources/subscribe`, ref-counted per URI: only the first subscriber reaches the server. */
  subscribe(uri: string, opts: CallOptions): Promise<CallOutcome>;
  /** The matching `resources/unsubscribe`: only the last one reaches the server. */
  unsubscribe(uri: string, opts: CallOptions): Promise<CallOutcome>;
  /** Ends the lane: calls in flight get `InternalError` with the reason. */
  close(reason: string): void;
}

/** The state of a server's shared lane, as `/status` and `/v1/servers` report it. */
export type LaneState =
  | "idle" //       nothing connected yet (connects on first use)
  | "connecting" // attaching / initializing
  | "ready" //      a lane is up
  | "backoff" //    it ended; the next attempt waits for the backoff
  | "crash_loop" // it ended too often in a row: reported, not retried until reset
  | "stopped"; //   the server is stopped or removed

/** Why a lane cannot be had right now; the edge turns it into a JSON-RPC error or an HTTP status. */
export class UpstreamUnavailable extends Error {
  constructor(
    readonly server: string,
    readonly state: LaneState,
    message: string,
    /** Seconds after which a retry may succeed (backoff), when known. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "UpstreamUnavailable";
  }
}

export interface SupervisorView {
  server: string;
  state: LaneState;
  /** Lane failures in a row (0 once a lane is ready). */
  failures: number;
  lastError: string | null;
  /** When the lane in use was initialized (ISO 8601), or null. */
  readySince: string | null;
  inFlight: number;
  /** Extra per-session lanes open now. */
  sessionLanes: number;
}

/**
 * Keeps one server's shared lane: connects on first use, re-connects with backoff after the lane
 * ends, and reports a crash loop instead of retrying forever. `reset()` (after a deploy, start or
 * restart through the control-plane API) clears the crash loop and the backoff.
 */
export interface LaneSupervisor {
  readonly server: string;
  /** The shared lane, connected and initialized; waits at most `timeoutMs`, else UpstreamUnavailable. */
  lane(timeoutMs: number): Promise<Lane>;
  /** A lane of its own for one agent session (isolation `per_session`), capped by the DTMA. */
  openSessionLane(timeoutMs: number): Promise<Lane>;
  view(): SupervisorView;
  reset(): void;
  /** Closes every lane of this server (stop, remove, backend shutdown). */
  shutdown(reason: string): void;
}
