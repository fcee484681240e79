// Settings come from the environment only, parsed once at start-up by servicekit's env parsers;
// a bad one stops the process with one line naming the variable. The token names are the ones
// components/containerSpecs.ts gives the container.
import {
  check,
  ConfigError,
  httpUrl,
  intIn,
  logLevel,
  matching,
  parseEnv,
  token,
  type Env,
  type Parser,
} from "@agentopia-toolboxes/servicekit/env";
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { TlsMaterial } from "@agentopia-toolboxes/servicekit/http";
import type { GatewayLimits } from "./mcp/deps";

export { ConfigError };

const MIB = 1024 * 1024;

/** `MCP_ALLOWED_ORIGINS`: comma-separated `scheme://host[:port]` origins; empty = none. */
const origins: Parser<string[]> = (env, name) => {
  const raw = (env[name] ?? "").trim();
  if (raw === "") return [];
  return raw.split(",").map((o) => {
    const origin = o.trim();
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      // reported below
    }
    check(
      url !== undefined &&
        (url.protocol === "http:" || url.protocol === "https:") &&
        url.origin === origin,
      `must list origins such as https://app.example.com (no path or trailing slash), got '${origin}'`,
    );
    return origin;
  });
};

const host: Parser<string> = (env, name) => {
  const v = env[name] ?? "0.0.0.0";
  check(v.length >= 1, "must not be empty");
  return v;
};

// In the order they are checked; the first bad one is reported.
const parsers = {
  PORT: intIn(1, 65535, 3000),
  HOST: host,
  INTERNAL_API_SECRET: token,
  AGENT_GATEWAY_TOKEN: token,
  DTMA_URL: httpUrl("http://dtma:30000"),
  DTMA_BEARER_TOKEN: token,
  DTMA_TIMEOUT_SECONDS: intIn(1, 120, 10),
  // The image this backend runs, as the container spec names it; GET /status reports it.
  BACKEND_IMAGE: matching(
    /^(?:[a-z0-9][^\s]{0,299})?$/,
    "must be an image reference, or empty",
    "",
  ),
  LOG_LEVEL: logLevel,
  MCP_ALLOWED_ORIGINS: origins,
  MCP_MAX_BODY_BYTES: intIn(1024, 64 * MIB, 4 * MIB),
  MCP_MAX_MESSAGE_BYTES: intIn(1024, 64 * MIB, 4 * MIB),
  MCP_REQUEST_TIMEOUT_SECONDS: intIn(1, 3600, 60),
  MCP_CONNECT_TIMEOUT_SECONDS: intIn(1, 300, 15),
  MCP_SESSION_IDLE_SECONDS: intIn(10, 7 * 86400, 1800),
  MCP_MAX_SESSIONS_PER_SERVER: intIn(1, 100_000, 256),
  MCP_MAX_INFLIGHT_PER_SERVER: intIn(1, 100_000, 64),
  MCP_RATE_PER_MINUTE: intIn(1, 1_000_000, 6000),
  MCP_RATE_BURST: intIn(1, 1_000_000, 1000),
  MCP_KEEPALIVE_SECONDS: intIn(1, 300, 15),
  DEPLOY_TIMEOUT_SECONDS: intIn(1, 3600, 60),
  DEPLOY_TIMEOUT_MAX_SECONDS: intIn(1, 3600, 300),
  AGENT_TOKEN_MAX_TTL_SECONDS: intIn(60, 365 * 86400, 30 * 86400),
  SERVER_REFRESH_SECONDS: intIn(1, 3600, 15),
};

/** PEM text, or the base64 of it (one line: what env files and the Docker API carry safely). */
function pem(value: string | undefined): string {
  const v = (value ?? "").trim();
  if (v === "" || v.startsWith("-----BEGIN")) return v;
  const decoded = Buffer.from(v, "base64").toString("utf8").trim();
  return decoded.startsWith("-----BEGIN") ? decoded : v;
}

/**
 * `TLS_CERT` and `TLS_KEY` (PEM, or base64 of PEM), both or neither; the key must be the
 * certificate's.
 */
function tlsMaterial(env: Env): TlsMaterial | undefined {
  const cert = pem(env.TLS_CERT);
  const key = pem(env.TLS_KEY);
  if (cert === "" && key === "") return undefined;
  const bad = (name: string, why: string) =>
    new ConfigError(`invalid configuration: ${name} ${why}`);
  if (cert === "") throw bad("TLS_CERT", "is required when TLS_KEY is set");
  if (key === "") throw bad("TLS_KEY", "is required when TLS_CERT is set");
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw bad("TLS_CERT", "must be a PEM certificate (chain)");
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    // Never the key's text: the error says only what is wrong with it.
    throw bad("TLS_KEY", "must be an unencrypted PEM private key");
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw bad("TLS_KEY", "is not the private key of TLS_CERT");
  }
  return { cert: `${cert}\n`, key: `${key}\n` };
}

export interface Config {
  port: number;
  host: string;
  /** When set, the port speaks only HTTPS with this certificate; otherwise plain HTTP. */
  tls: TlsMaterial | undefined;
  /** The control plane's bearer token; per-agent tokens are signed with a key derived from it. */
  internalApiSecret: string;
  /** The toolbox-wide agent token (every server). */
  agentGatewayToken: string;
  /** The image this backend runs (BACKEND_IMAGE), in GET /status (absent: not reported). */
  image?: string;
  dtma: { url: string; token: string; timeoutMs: number };
  logLevel: string;
  allowedOrigins: string[];
  limits: GatewayLimits;
  /** Upstream message (stdio line, http body or SSE event) cap. */
  maxMessageBytes: number;
  deployTimeoutMs: { default: number; max: number };
  agentTokenMaxTtlSeconds: number;
  serverRefreshMs: number;
}

export function loadConfig(env: Env): Config {
  const e = parseEnv(parsers, env);
  if (e.DEPLOY_TIMEOUT_SECONDS > e.DEPLOY_TIMEOUT_MAX_SECONDS) {
    throw new ConfigError(
      `invalid configuration: DEPLOY_TIMEOUT_SECONDS must be at most DEPLOY_TIMEOUT_MAX_SECONDS (${e.DEPLOY_TIMEOUT_MAX_SECONDS})`,
    );
  }
  if (e.INTERNAL_API_SECRET === e.AGENT_GATEWAY_TOKEN) {
    throw new ConfigError(
      "invalid configuration: AGENT_GATEWAY_TOKEN must differ from INTERNAL_API_SECRET",
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    tls: tlsMaterial(env),
    internalApiSecret: e.INTERNAL_API_SECRET,
    agentGatewayToken: e.AGENT_GATEWAY_TOKEN,
    image: e.BACKEND_IMAGE === "" ? undefined : e.BACKEND_IMAGE,
    dtma: { url: e.DTMA_URL, token: e.DTMA_BEARER_TOKEN, timeoutMs: e.DTMA_TIMEOUT_SECONDS * 1000 },
    logLevel: e.LOG_LEVEL,
    allowedOrigins: e.MCP_ALLOWED_ORIGINS,
    limits: {
      maxBodyBytes: e.MCP_MAX_BODY_BYTES,
      requestTimeoutMs: e.MCP_REQUEST_TIMEOUT_SECONDS * 1000,
      sessionIdleMs: e.MCP_SESSION_IDLE_SECONDS * 1000,
      maxSessionsPerServer: e.MCP_MAX_SESSIONS_PER_SERVER,
      maxInFlightPerServer: e.MCP_MAX_INFLIGHT_PER_SERVER,
      ratePerMinute: e.MCP_RATE_PER_MINUTE,
      rateBurst: e.MCP_RATE_BURST,
      keepAliveMs: e.MCP_KEEPALIVE_SECONDS * 1000,
      connectTimeoutMs: e.MCP_CONNECT_TIMEOUT_SECONDS * 1000,
    },
    maxMessageBytes: e.MCP_MAX_MESSAGE_BYTES,
    deployTimeoutMs: {
      default: e.DEPLOY_TIMEOUT_SECONDS * 1000,
      max: e.DEPLOY_TIMEOUT_MAX_SECONDS * 1000,
    },
    agentTokenMaxTtlSeconds: e.AGENT_TOKEN_MAX_TTL_SECONDS,
    serverRefreshMs: e.SERVER_REFRESH_SECONDS * 1000,
  };
}
