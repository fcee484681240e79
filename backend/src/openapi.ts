import type { Route, Router } from "@agentopia-toolboxes/servicekit/http";

// The OpenAPI document is built from the router itself, so a route cannot be served without
// being described (a test checks that every route has its entry below).

type Schema = Record<string, unknown>;

const str = { type: "string" };
const int = { type: "integer" };
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const schemas: Record<string, Schema> = {
  Error: {
    type: "object",
    required: ["error", "message"],
    properties: {
      error: { ...str, description: "stable code" },
      message: str,
      field: { ...str, description: "the input at fault" },
      logs: {
        type: "array",
        items: str,
        description: "server_not_ready: the server's last log lines",
      },
    },
  },
  DeploySpec: {
    type: "object",
    required: ["image", "transport"],
    description:
      "The DTMA's tool spec (dtma/README.md) plus timeout_seconds: how long the deploy waits for the server's MCP initialize through the gateway.",
    properties: {
      image: str,
      command: { type: "array", items: str },
      transport: {
        oneOf: [
          { type: "object", properties: { type: { const: "stdio" } }, required: ["type"] },
          {
            type: "object",
            properties: { type: { const: "http" }, port: int, path: str },
            required: ["type", "port"],
          },
        ],
      },
      env: { type: "object", additionalProperties: str },
      secrets: { type: "object", additionalProperties: str, description: "never echoed or logged" },
      resources: {
        type: "object",
        properties: { memory_mb: int, cpus: { type: "number" }, pids: int },
      },
      network: { enum: ["egress", "none"] },
      isolation: { enum: ["shared", "per_session"] },
      max_lanes: { ...int, description: "per_session: processes at most" },
      account_tool_instance_id: { type: ["string", "null"] },
      pull: { enum: ["missing", "always"] },
      registry_auth: { type: "object" },
      timeout_seconds: int,
    },
  },
  Server: {
    type: "object",
    description:
      "The DTMA's view of the server's container and the gateway's of its lane; `tools` (and `tools_error`) on deploy, get, start and restart.",
    properties: {
      name: str,
      image: str,
      transport: { type: "object" },
      isolation: str,
      state: str,
      health: str,
      gateway: {
        type: "object",
        properties: {
          lane: { enum: ["idle", "connecting", "ready", "backoff", "crash_loop", "stopped"] },
          failures: int,
          last_error: { type: ["string", "null"] },
          in_flight: int,
          sessions: int,
        },
      },
      tools: { type: ["array", "null"], items: { type: "object" } },
      created: { type: "boolean" },
      changed: { type: "boolean" },
    },
  },
  AgentTokenRequest: {
    type: "object",
    required: ["agent_id", "servers"],
    properties: {
      agent_id: str,
      servers: { oneOf: [{ const: "*" }, { type: "array", items: str }] },
      expires_in_seconds: {
        ...int,
        description: "60 to AGENT_TOKEN_MAX_TTL_SECONDS, default 3600",
      },
    },
  },
  Revocation: {
    type: "object",
    properties: {
      token_id: str,
      agent_id: str,
      issued_before: { ...str, format: "date-time" },
      expires_at: { ...str, format: "date-time" },
    },
  },
};

interface Doc {
  summary: string;
  body?: string;
  answer?: string;
}

/** What each route does; every route the router serves has an entry. */
const ROUTE_DOCS: Record<string, Doc> = {
  "GET /health": { summary: "Liveness, without a token and without a version" },
  "GET /status": {
    summary:
      "The backend's state (version, uptime, boot id, sessions, servers) and the DTMA's /status",
  },
  "GET /metrics": { summary: "Prometheus text" },
  "GET /openapi.json": { summary: "This document" },
  "GET /v1/servers": { summary: "Every MCP server on the toolbox", answer: "Server" },
  "PUT /v1/servers/:name": {
    summary:
      "Deploy or update a server idempotently; answers once it completed an MCP initialize through the gateway (201 new, 200 unchanged or updated), else 422 server_not_ready with its last log lines",
    body: "DeploySpec",
    answer: "Server",
  },
  "GET /v1/servers/:name": { summary: "One server, with the tools it offers", answer: "Server" },
  "POST /v1/servers/:name/start": {
    summary: "Start a stopped server and wait until it is ready",
    answer: "Server",
  },
  "POST /v1/servers/:name/stop": { summary: "Stop a server (its sessions end)", answer: "Server" },
  "POST /v1/servers/:name/restart": {
    summary: "Restart a server and wait until it is ready",
    answer: "Server",
  },
  "DELETE /v1/servers/:name": { summary: "Remove a server" },
  "GET /v1/servers/:name/logs": {
    summary: "The server's log lines (stdio servers: stderr only); ?tail=0..10000&since=",
  },
  "POST /v1/agent-tokens": {
    summary: "Mint a per-agent token naming the agent, its servers and its expiry",
    body: "AgentTokenRequest",
  },
  "POST /v1/agent-tokens/revoke": {
    summary: "Revoke one token (token_id) or every token of an agent issued so far (agent_id)",
    body: "Revocation",
  },
  "GET /v1/agent-tokens/revocations": { summary: "The revocations held, with the boot id" },
  "PUT /v1/agent-tokens/revocations": {
    summary: "Replace the revocations (the control plane puts them back after a restart)",
  },
  "POST /mcp/:server": { summary: "MCP streamable HTTP to one server (both protocol eras)" },
  "GET /mcp/:server": { summary: "MCP: a session's stream of server-initiated messages" },
  "DELETE /mcp/:server": { summary: "MCP: end a session" },
  "POST /mcp": {
    summary: "MCP: every server the caller may use, tools namespaced <server>__<tool>",
  },
  "GET /mcp": { summary: "MCP: a session's stream of server-initiated messages (aggregate)" },
  "DELETE /mcp": { summary: "MCP: end a session (aggregate)" },
};

const routeKey = (r: Pick<Route, "method" | "path">) => `${r.method} ${r.path}`;

export function openapiDocument(router: Router, version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of router.list()) {
    const doc = ROUTE_DOCS[routeKey(route)] ?? { summary: routeKey(route) };
    const path = route.path.replace(/:([a-z_]+)/g, "{$1}");
    const params = [...route.path.matchAll(/:([a-z_]+)/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: str,
    }));
    const error = {
      description: "error",
      content: { "application/json": { schema: ref("Error") } },
    };
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      summary: doc.summary,
      ...(route.auth === "none" ? { security: [] } : {}),
      ...(params.length ? { parameters: params } : {}),
      ...(doc.body
        ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: ref(doc.body) } },
            },
          }
        : {}),
      responses: {
        "2XX": {
          description: "success",
          ...(doc.answer ? { content: { "application/json": { schema: ref(doc.answer) } } } : {}),
        },
        "4XX": error,
        "5XX": error,
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "agentopia-toolboxes backend (toolbox gateway)", version },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description:
            "INTERNAL_API_SECRET for /status, /metrics, /openapi.json and /v1/*; AGENT_GATEWAY_TOKEN or a per-agent token for /mcp",
        },
      },
      schemas,
    },
    paths,
  };
}
