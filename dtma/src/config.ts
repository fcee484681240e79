import { z } from "zod";

// Settings come from the environment only, parsed once at start-up; a bad one stops the
// process with one line naming the variable.

const intIn = (min: number, max: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === "" ? String(fallback) : v))
    .pipe(z.string().regex(/^\d+$/, "must be a whole number"))
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const numberIn = (min: number, max: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === "" ? String(fallback) : v))
    .pipe(z.string().regex(/^\d+(\.\d+)?$/, "must be a number"))
    .transform(Number)
    .pipe(z.number().min(min).max(max));

// 256-bit tokens are what the component generates; 32 characters is the floor we accept.
const token = z
  .string({ error: "is required" })
  .min(32, "must be at least 32 characters")
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

const envSchema = z.object({
  PORT: intIn(1, 65535, 30000),
  HOST: z.string().min(1).default("0.0.0.0"),
  DTMA_BEARER_TOKEN: token,
  DTMA_BEARER_TOKEN_PREVIOUS: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v))
    .pipe(token.optional()),
  AGENTOPIA_API_BASE_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .transform((v) => v.replace(/\/+$/, "")),
  DTMA_TOOL_NETWORK: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/, "must be a Docker network name")
    .default("toolbox-tools"),
  DTMA_MAX_TOOL_MEMORY_MB: intIn(16, 65536, 256),
  DTMA_MAX_TOOL_CPUS: numberIn(0.01, 64, 1),
  DTMA_MAX_TOOL_PIDS: intIn(8, 32768, 256),
  DTMA_HEARTBEAT_INTERVAL_SECONDS: intIn(1, 3600, 60),
  DTMA_STATUS_REFRESH_SECONDS: intIn(1, 300, 5),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DOCKER_SOCKET: z
    .string()
    .startsWith("/", "must be an absolute path")
    .default("/var/run/docker.sock"),
  DTMA_SCOPE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, "must be a short lowercase label")
    .default("default"),
});

export interface Config {
  port: number;
  host: string;
  tokens: { current: string; previous: string | undefined };
  apiBaseUrl: string;
  toolNetwork: string;
  caps: { memoryMb: number; cpus: number; pids: number };
  heartbeatIntervalMs: number;
  statusRefreshMs: number;
  logLevel: string;
  dockerSocket: string;
  /** Separates several DTMAs on one daemon (tests); "default" in production. */
  scope: string;
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue.path[0] ?? "environment");
    const message =
      env[name] === undefined && issue.code !== "custom" ? "is required" : issue.message;
    throw new ConfigError(`invalid configuration: ${name} ${message}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    tokens: { current: e.DTMA_BEARER_TOKEN, previous: e.DTMA_BEARER_TOKEN_PREVIOUS },
    apiBaseUrl: e.AGENTOPIA_API_BASE_URL,
    toolNetwork: e.DTMA_TOOL_NETWORK,
    caps: {
      memoryMb: e.DTMA_MAX_TOOL_MEMORY_MB,
      cpus: e.DTMA_MAX_TOOL_CPUS,
      pids: e.DTMA_MAX_TOOL_PIDS,
    },
    heartbeatIntervalMs: e.DTMA_HEARTBEAT_INTERVAL_SECONDS * 1000,
    statusRefreshMs: e.DTMA_STATUS_REFRESH_SECONDS * 1000,
    logLevel: e.LOG_LEVEL,
    dockerSocket: e.DOCKER_SOCKET,
    scope: e.DTMA_SCOPE,
  };
}
