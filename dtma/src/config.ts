// Settings come from the environment only, parsed once at start-up; a bad one stops the
// process with one line naming the variable. Hand-written rather than zod, which costs ~10 MB of
// resident memory (docs/decisions/0005).

type Env = NodeJS.ProcessEnv;

export class ConfigError extends Error {}

class Invalid extends Error {}

/** The variable, or `fallback` when it is unset or empty. */
const read = (env: Env, name: string, fallback: string) => {
  const v = env[name];
  return v === undefined || v === "" ? fallback : v;
};

function check(ok: boolean, message: string): void {
  if (!ok) throw new Invalid(message);
}

function numberIn(v: string, min: number, max: number, whole: boolean): number {
  if (whole) check(/^\d+$/.test(v), "must be a whole number");
  else check(/^\d+(\.\d+)?$/.test(v), "must be a number");
  const n = Number(v);
  check(!whole || Number.isSafeInteger(n), "must be a whole number");
  check(n >= min, `must be at least ${min}`);
  check(n <= max, `must be at most ${max}`);
  return n;
}
const intIn = (min: number, max: number, fallback: number) => (env: Env, name: string) =>
  numberIn(read(env, name, String(fallback)), min, max, true);
const decimalIn = (min: number, max: number, fallback: number) => (env: Env, name: string) =>
  numberIn(read(env, name, String(fallback)), min, max, false);

// 256-bit tokens are what the component generates; 32 characters is the floor we accept.
function token(v: string | undefined): string {
  check(v !== undefined, "is required");
  check(v!.length >= 32, "must be at least 32 characters");
  check(/^[\x21-\x7e]+$/.test(v!), "must be printable ASCII without spaces");
  return v!;
}

const matching = (pattern: RegExp, rule: string, fallback: string) => (env: Env, name: string) => {
  const v = env[name] ?? fallback;
  check(pattern.test(v), rule);
  return v;
};

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

// In the order they are checked; the first bad one is reported.
const parsers = {
  PORT: intIn(1, 65535, 30000),
  HOST: (env: Env, name: string) => {
    const v = env[name] ?? "0.0.0.0";
    check(v.length >= 1, "must not be empty");
    return v;
  },
  DTMA_BEARER_TOKEN: (env: Env, name: string) => token(env[name]),
  DTMA_BEARER_TOKEN_PREVIOUS: (env: Env, name: string) => {
    const v = env[name];
    return v === undefined || v === "" ? undefined : token(v);
  },
  AGENTOPIA_API_BASE_URL: (env: Env, name: string) => {
    const v = env[name];
    check(v !== undefined, "is required");
    let url: URL | undefined;
    try {
      url = new URL(v!);
    } catch {
      // reported below
    }
    check(
      url !== undefined && (url.protocol === "http:" || url.protocol === "https:"),
      "must be an http(s) URL",
    );
    return v!.replace(/\/+$/, "");
  },
  DTMA_TOOL_NETWORK: matching(
    /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/,
    "must be a Docker network name",
    "toolbox-tools",
  ),
  DTMA_MAX_TOOL_MEMORY_MB: intIn(16, 65536, 256),
  DTMA_MAX_TOOL_CPUS: decimalIn(0.01, 64, 1),
  DTMA_MAX_TOOL_PIDS: intIn(8, 32768, 256),
  DTMA_HEARTBEAT_INTERVAL_SECONDS: intIn(1, 3600, 60),
  DTMA_STATUS_REFRESH_SECONDS: intIn(1, 300, 5),
  LOG_LEVEL: (env: Env, name: string) => {
    const v = env[name] ?? "info";
    check(LOG_LEVELS.includes(v), `must be one of ${LOG_LEVELS.join(", ")}`);
    return v;
  },
  DOCKER_SOCKET: matching(/^\//, "must be an absolute path", "/var/run/docker.sock"),
  DTMA_SCOPE: matching(/^[a-z0-9][a-z0-9-]{0,30}$/, "must be a short lowercase label", "default"),
};

type Parsed = { [K in keyof typeof parsers]: ReturnType<(typeof parsers)[K]> };

function parse(env: Env): Parsed {
  const out: Record<string, unknown> = {};
  for (const [name, parser] of Object.entries(parsers)) {
    try {
      out[name] = parser(env, name);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      throw new ConfigError(`invalid configuration: ${name} ${err.message}`);
    }
  }
  return out as Parsed;
}

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

export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const e = parse(env);
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
