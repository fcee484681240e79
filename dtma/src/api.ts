// The DTMA's HTTP API types (snake_case, like the rest of Agentopia). Shared by the server,
// the typed client and the services that import the client.

import type { DockerState, InstallationStatus } from "@agentopia-toolboxes/contract/status";

/** A tool name is a DNS label: it becomes part of a container name and a network alias. */
export const TOOL_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const TOOL_NAME_RULE =
  "a tool name is 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit";

export type Transport = { type: "stdio" } | { type: "http"; port: number; path?: string };

/**
 * How the backend may use a stdio tool: `shared` (default) is one process for every session
 * through the attachment; `per_session` also allows lanes, an extra process per connection in
 * the same container (`POST /tools/:name/lanes`), at most `max_lanes` at once.
 */
export type Isolation = "shared" | "per_session";

export interface ToolResources {
  memory_mb?: number;
  cpus?: number;
  pids?: number;
}

export interface RegistryAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress?: string;
}

/** Body of `PUT /tools/:name`. */
export interface ToolSpec {
  image: string;
  command?: string[];
  env?: Record<string, string>;
  /** Passed to the container's environment; never logged, never in labels or answers. */
  secrets?: Record<string, string>;
  transport: Transport;
  /** Default "shared". */
  isolation?: Isolation;
  /** Lanes open at once for a `per_session` tool: 1-32, default 4, capped by the toolbox. */
  max_lanes?: number;
  resources?: ToolResources;
  /** "egress" (default): the private tool network; "none": loopback only. */
  network?: "none" | "egress";
  account_tool_instance_id?: string | null;
  /** "missing" (default): pull only when the image is absent. */
  pull?: "missing" | "always";
  /** Used for this pull only, never stored. */
  registry_auth?: RegistryAuth;
  /**
   * The uid (or uid:gid, numeric, never 0) the tool runs as. Default: the image's user when it
   * is a numeric uid other than 0, otherwise 65534:65534.
   */
  user?: string;
  /** Run as root (still without capabilities): refused unless DTMA_MAX_ROOT_TOOLS allows it. */
  run_as_root?: boolean;
}

/** The tool container's Docker state (`State.Status`). */
export type ToolState = DockerState;

export type ToolHealth = "healthy" | "unhealthy" | "starting" | "none";

export interface Tool {
  name: string;
  image: string;
  state: ToolState;
  health: ToolHealth;
  account_tool_instance_id: string | null;
  container_id: string;
  spec_hash: string;
  transport: Transport;
  isolation: Isolation;
  max_lanes: number;
  network: "none" | "egress";
  /** The uid:gid the tool's processes run as. */
  user: string | null;
  /** Where the backend reaches an http tool on the tool network. */
  endpoint: string | null;
  resources: Required<ToolResources>;
  created_at: string;
  started_at: string | null;
  uptime_seconds: number;
  restarts: number;
}

/** Answer of `PUT /tools/:name`: `changed` is false when the same spec was already deployed. */
export interface DeployResult extends Tool {
  changed: boolean;
}

export interface ToolList {
  tools: Tool[];
}

/** The upgrade protocol of `POST /tools/:name/attach` and `/lanes`: raw stdin/stdout bytes. */
export const STDIO_UPGRADE = "mcp-stdio";
/** Header of the 101 answer: the container's `State.StartedAt` (ISO 8601). */
export const STARTED_AT_HEADER = "x-tool-started-at";

/** Error codes of a refused attachment or lane (besides 401, 400 and `tool_not_found`). */
export type StdioRefusal =
  | "already_attached" // 409: the tool's one attachment is taken
  | "not_running" //      409
  | "not_stdio" //        422: an http tool
  | "not_per_session" //  422: lanes on a shared tool
  | "lane_limit" //       429: max_lanes lanes are open
  | "upgrade_required" // 426: no `Upgrade: mcp-stdio`
  | "docker_failed"; //   502: the daemon refused the attach or exec

export interface LogEntry {
  stream: "stdout" | "stderr";
  text: string;
}

/**
 * A stdio tool's logs hold stderr only: its stdout is the protocol channel (tool results), which
 * must not reach logs the control plane reads. An http tool's hold both streams.
 */
export interface ToolLogs {
  name: string;
  /**
   * Lines were cut at DTMA_LOGS_MAX_LINE_BYTES, or older ones left out to keep the answer within
   * DTMA_LOGS_MAX_BYTES (never for `tail` alone).
   */
  truncated: boolean;
  entries: LogEntry[];
}

export type WaitState = "running" | "exited" | "healthy" | "removed";

export interface WaitResult {
  name: string;
  state: WaitState;
  reached: boolean;
  tool: Tool | null;
}

export interface SystemMetrics {
  cpu: { count: number; usage_percent: number; load_average: [number, number, number] };
  memory: { total_bytes: number; used_bytes: number; usage_percent: number };
  disk: { total_bytes: number; used_bytes: number; usage_percent: number };
  containers: { total: number; running: number };
}

export interface ToolInstanceStatus {
  name: string;
  account_tool_instance_id: string | null;
  state: ToolState;
  health: ToolHealth;
  image: string;
  uptime_seconds: number;
  restarts: number;
}

export interface Status {
  status: "ok" | "degraded";
  service: "DTMA";
  version: string;
  uptime_seconds: number;
  sampled_at: string;
  system_metrics: SystemMetrics;
  docker: { reachable: boolean; version: string | null; error?: string };
  tool_instances: ToolInstanceStatus[];
}

export interface Health {
  status: "ok";
}

/** Every error answer. `error` is a stable code; `field` names the offending input. */
export interface ApiError {
  error: string;
  message: string;
  field?: string;
}

/** Body of the heartbeat the DTMA posts to `{AGENTOPIA_API_BASE_URL}/heartbeat`. */
export interface Heartbeat {
  dtma_version: string;
  /** The image this DTMA runs (DTMA_IMAGE): what a fleet upgrade waits to see. */
  dtma_image?: string;
  system_status: {
    status: Status["status"];
    uptime_seconds: number;
    system_metrics: SystemMetrics;
    docker: Status["docker"];
  };
  tool_statuses: HeartbeatToolStatus[];
}

/** `status` is Agentopia's `account_tool_installation_status_enum` (the contract's state map). */
export interface HeartbeatToolStatus {
  account_tool_instance_id: string;
  name: string;
  status: InstallationStatus;
  state: ToolState;
  health: ToolHealth;
  restarts: number;
}
