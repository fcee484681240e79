import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { AuthFailure, Principal } from "../auth/principal";
import type { LaneSupervisor } from "../upstream/types";

/** One MCP server on this toolbox, as the gateway knows it (from the DTMA's tool list). */
export interface GatewayServer {
  /** The tool name (a DNS label): `/mcp/:server`, and the namespace in `/mcp`. */
  name: string;
  transport: "stdio" | "http";
  /** `shared`: sessions share the server's lane; `per_session`: each session gets its own lane. */
  isolation: "shared" | "per_session";
  /** False while the tool is stopped or not running (requests answer Unavailable at once). */
  running: boolean;
  supervisor: LaneSupervisor;
}

/** What the registry (src/servers/) offers the edge. */
export interface ServerDirectory {
  get(name: string): GatewayServer | undefined;
  list(): GatewayServer[];
}

/** The gateway's limits (each a documented setting, validated at start-up). */
export interface GatewayLimits {
  /** POST body cap (413 above it). */
  maxBodyBytes: number;
  /** Per-request timeout toward the server. */
  requestTimeoutMs: number;
  /** A session unused this long is ended (later requests get 404). */
  sessionIdleMs: number;
  /** Sessions per server (and of the aggregate endpoint) at once; beyond it `initialize` gets 503. */
  maxSessionsPerServer: number;
  /** Calls in flight per server; beyond it 503 with Retry-After. */
  maxInFlightPerServer: number;
  /** Requests per principal per minute (token bucket; 429 with Retry-After above it). */
  ratePerMinute: number;
  /** Burst size of the bucket. */
  rateBurst: number;
  /** SSE keep-alive comment interval. */
  keepAliveMs: number;
  /** How long a request waits for a server's lane to come up. */
  connectTimeoutMs: number;
}

/** Counters the edge keeps; the app renders them on `/metrics`. */
export interface GatewayMetrics {
  toolCall(server: string, outcome: string, seconds: number): void;
  mcpRequest(server: string, method: string, outcome: string): void;
  sessionOpened(server: string): void;
  sessionClosed(server: string, reason: string): void;
  rateLimited(): void;
  /** A refused bearer token (the reason, never the token); servicekit's `refused` counts it here. */
  authFailure(reason: string): void;
}

export interface GatewayDeps {
  servers: ServerDirectory;
  /** Resolves the request's bearer token (async: per-agent tokens are verified signatures). */
  authenticate(req: IncomingMessage): Promise<Principal | AuthFailure>;
  limits: GatewayLimits;
  /** Origins allowed to call (exact `scheme://host[:port]`); a present Origin not listed → 403. */
  allowedOrigins: readonly string[];
  log: Logger;
  metrics: GatewayMetrics;
  /** The backend's version, reported as the gateway's serverInfo on `/mcp`. */
  version: string;
  now?: () => number;
}
