// Settings come from the environment only, parsed once at start-up by servicekit's env parsers;
// a bad one stops the process with one line naming the variable.
import {
  check,
  ConfigError,
  decimalIn,
  httpUrl,
  intIn,
  logLevel,
  matching,
  optionalToken,
  parseEnv,
  read,
  token,
  type Env,
} from "@agentopia-toolboxes/servicekit/env";

import { isIpv4Cidr } from "@agentopia-toolboxes/contract/network";
import { DEFAULT_REGISTRIES, RegistryAllowList } from "./tools/image";

export { ConfigError };

// In the order they are checked; the first bad one is reported.
const parsers = {
  PORT: intIn(1, 65535, 30000),
  HOST: (env: Env, name: string) => {
    const v = env[name] ?? "0.0.0.0";
    check(v.length >= 1, "must not be empty");
    return v;
  },
  DTMA_BEARER_TOKEN: token,
  DTMA_BEARER_TOKEN_PREVIOUS: optionalToken,
  AGENTOPIA_API_BASE_URL: httpUrl(),
  DTMA_TOOL_NETWORK: matching(
    /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/,
    "must be a Docker network name",
    "toolbox-tools",
  ),
  DTMA_TOOL_SUBNET_POOL: (env: Env, name: string): string => {
    const v = read(env, name, "");
    check(
      v === "" || (isIpv4Cidr(v) && Number(v.split("/")[1]) <= 24),
      "must be an IPv4 CIDR of /24 or wider, or empty (Docker chooses)",
    );
    return v;
  },
  DTMA_TOOL_SUBNET_PREFIX: intIn(24, 29, 28),
  DTMA_GATEWAY_CONTAINER: matching(
    /^(?:[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127})?$/,
    "must be a container name, or empty (no gateway is connected)",
    "",
  ),
  DTMA_MAX_TOOL_MEMORY_MB: intIn(16, 65536, 256),
  DTMA_MAX_TOOL_CPUS: decimalIn(0.01, 64, 1),
  DTMA_MAX_TOOL_PIDS: intIn(8, 32768, 256),
  DTMA_MAX_LANES_PER_TOOL: intIn(1, 32, 8),
  DTMA_MAX_ROOT_TOOLS: intIn(0, 64, 0),
  DTMA_HEARTBEAT_INTERVAL_SECONDS: intIn(1, 3600, 60),
  DTMA_STATUS_REFRESH_SECONDS: intIn(1, 300, 5),
  LOG_LEVEL: logLevel,
  DOCKER_SOCKET: matching(/^\//, "must be an absolute path", "/var/run/docker.sock"),
  DTMA_REGISTRIES: (env: Env, name: string): RegistryAllowList => {
    let list: RegistryAllowList | undefined;
    let problem = "";
    try {
      list = new RegistryAllowList(read(env, name, DEFAULT_REGISTRIES));
    } catch (err) {
      problem = (err as Error).message;
    }
    check(list !== undefined, problem);
    return list!;
  },
  DTMA_MAX_CONCURRENT_PULLS: intIn(1, 16, 2),
  DTMA_PULL_TIMEOUT_SECONDS: intIn(1, 3600, 300),
  DTMA_LOGS_MAX_BYTES: intIn(4096, 16 * 1024 * 1024, 1024 * 1024),
  DTMA_LOGS_MAX_LINE_BYTES: intIn(256, 1024 * 1024, 16 * 1024),
  DTMA_MAX_LOG_READS: intIn(1, 64, 4),
  DTMA_SCOPE: matching(/^[a-z0-9][a-z0-9-]{0,30}$/, "must be a short lowercase label", "default"),
  // The image this DTMA runs, as the container spec names it; its heartbeat reports it.
  DTMA_IMAGE: matching(/^(?:[a-z0-9][^\s]{0,299})?$/, "must be an image reference, or empty", ""),
  DTMA_ACCOUNT_ID: matching(
    /^(?:[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?)?$/,
    "must be an account id (1-48 lowercase letters, digits or inner hyphens)",
    "",
  ),
};

export interface Config {
  port: number;
  host: string;
  tokens: { current: string; previous: string | undefined };
  apiBaseUrl: string;
  /** Prefix of each egress tool's own network: `<DTMA_TOOL_NETWORK>.<tool>`. */
  toolNetwork: string;
  /** The pool tools' subnets are carved from; none: Docker chooses. */
  toolSubnets: { cidr: string; prefixLength: number } | undefined;
  /** The gateway container connected to every tool network; none: not connected. */
  gateway: string | undefined;
  /** Caps of a tool's resources and of a per_session tool's lanes. */
  caps: { memoryMb: number; cpus: number; pids: number; lanes: number; rootTools: number };
  heartbeatIntervalMs: number;
  statusRefreshMs: number;
  logLevel: string;
  dockerSocket: string;
  /** Registries tools may be pulled from (DTMA_REGISTRIES). */
  registries: RegistryAllowList;
  /** Pulls run in their own pool of Docker connections, each within a deadline. */
  pulls: { max: number; timeoutMs: number };
  /** Bounds of a logs answer, and log reads at once. */
  logs: { maxBytes: number; maxLineBytes: number; maxReads: number };
  /** Separates several DTMAs on one daemon (tests); "default" in production. */
  scope: string;
  /** The toolbox's account, labelled on every tool container (absent: no label). */
  account?: string;
  /** The image this DTMA runs (DTMA_IMAGE), reported in every heartbeat (absent: not reported). */
  image?: string;
}

export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const e = parseEnv(parsers, env);
  return {
    port: e.PORT,
    host: e.HOST,
    tokens: { current: e.DTMA_BEARER_TOKEN, previous: e.DTMA_BEARER_TOKEN_PREVIOUS },
    apiBaseUrl: e.AGENTOPIA_API_BASE_URL,
    toolNetwork: e.DTMA_TOOL_NETWORK,
    toolSubnets:
      e.DTMA_TOOL_SUBNET_POOL === ""
        ? undefined
        : { cidr: e.DTMA_TOOL_SUBNET_POOL, prefixLength: e.DTMA_TOOL_SUBNET_PREFIX },
    gateway: e.DTMA_GATEWAY_CONTAINER === "" ? undefined : e.DTMA_GATEWAY_CONTAINER,
    caps: {
      memoryMb: e.DTMA_MAX_TOOL_MEMORY_MB,
      cpus: e.DTMA_MAX_TOOL_CPUS,
      pids: e.DTMA_MAX_TOOL_PIDS,
      lanes: e.DTMA_MAX_LANES_PER_TOOL,
      rootTools: e.DTMA_MAX_ROOT_TOOLS,
    },
    heartbeatIntervalMs: e.DTMA_HEARTBEAT_INTERVAL_SECONDS * 1000,
    statusRefreshMs: e.DTMA_STATUS_REFRESH_SECONDS * 1000,
    logLevel: e.LOG_LEVEL,
    dockerSocket: e.DOCKER_SOCKET,
    registries: e.DTMA_REGISTRIES,
    pulls: { max: e.DTMA_MAX_CONCURRENT_PULLS, timeoutMs: e.DTMA_PULL_TIMEOUT_SECONDS * 1000 },
    logs: {
      maxBytes: e.DTMA_LOGS_MAX_BYTES,
      maxLineBytes: e.DTMA_LOGS_MAX_LINE_BYTES,
      maxReads: e.DTMA_MAX_LOG_READS,
    },
    scope: e.DTMA_SCOPE,
    account: e.DTMA_ACCOUNT_ID === "" ? undefined : e.DTMA_ACCOUNT_ID,
    image: e.DTMA_IMAGE === "" ? undefined : e.DTMA_IMAGE,
  };
}
