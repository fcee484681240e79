// What a lane kind (stdio.ts, http.ts) builds on: the options both take, the transport it gives
// the multiplexer (core.ts), and the lane with its counters it hands back.
import type { Logger } from "pino";
import type {
  JsonObject,
  JsonRpcErrorObject,
  JsonRpcId,
  JsonRpcNotification,
  JsonRpcRequest,
  Lane,
} from "./types";

/** What a lane dropped or answered on its own; counters only (never contents). */
export interface LaneStats {
  /** Lines or events that were not JSON or not JSON-RPC. */
  invalid: number;
  /** Messages over the cap, dropped (the call each one answered got MessageTooLarge). */
  oversized: number;
  /** Responses for no call in flight: late answers after a timeout or cancel, unknown ids. */
  unmatched: number;
  /** Requests from the server, answered by the lane (`ping` with `{}`, anything else -32601). */
  serverRequests: number;
  /** Notifications dropped: log messages on shared lanes, progress of no call, other methods. */
  droppedNotifications: number;
}

/** A lane as the lane factories return it: the contract plus its counters. */
export interface UpstreamLane extends Lane {
  readonly stats: Readonly<LaneStats>;
}

/** Options both lane kinds take. */
export interface CommonLaneOptions {
  /** The server (tool) name, as `Lane.server`. */
  server: string;
  /** The cap on one message from the server, in bytes (a stdio line, an HTTP body, an SSE event). */
  maxMessageBytes: number;
  /** The lane's creation fails when the server has not answered `initialize` within this. */
  initializeTimeoutMs: number;
  /** `clientInfo.version` in the gateway's `initialize`. Default "0.1.0". */
  clientVersion?: string;
  /**
   * Pass `notifications/message` (server logs) to listeners: for per-session lanes only.
   * Default false: shared lanes drop them, since they cannot be attributed to one session.
   */
  forwardLogs?: boolean;
  /** Lifecycle and drop counts are logged here (never a message's contents). */
  log?: Logger;
}

export interface OutgoingResponse {
  jsonrpc: "2.0";
  id: JsonRpcId;
  result?: JsonObject;
  error?: JsonRpcErrorObject;
}

/** What a lane needs from the connection underneath. */
export interface LaneTransport {
  /** Sends a request. Its answer comes back through `LaneCore.receive` (or `settle` on failure). */
  request(message: JsonRpcRequest): void;
  notify(message: JsonRpcNotification): void;
  respond(message: OutgoingResponse): void;
  /**
   * The gateway stopped waiting for this call (cancel, timeout). Returns true when the request
   * never left the gateway (still queued), so no `notifications/cancelled` is needed.
   */
  withdraw(id: number): boolean;
  /** The lane ended: release the connection. */
  shutdown(reason: string): void;
}
