/** The API as OpenAPI 3.1, served at /openapi.json. */
import { LIFECYCLE_STATUSES } from "@agentopia-toolboxes/contract";
import { fleetPaths } from "./fleet/openapi";

const bearer = [{ bearer: [] }];
const accountParam = {
  name: "account_id",
  in: "path",
  required: true,
  schema: { type: "string", format: "uuid" },
};
const err = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});
const json = (description: string, ref: string) => ({
  description,
  content: { "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } },
});
const common = {
  "400": err("bad input (names the field)"),
  "401": err("no or invalid token"),
  "403": err("not your account"),
};

export const openApiDocument = {
  openapi: "3.1.0",
  info: { title: "Agentopia toolbox automation", version: "1" },
  components: {
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        description: "service token or Supabase session JWT",
      },
      dtmaToken: { type: "http", scheme: "bearer", description: "the toolbox's own DTMA token" },
    },
    schemas: {
      Error: {
        type: "object",
        required: ["error", "message"],
        properties: {
          error: { type: "string" },
          message: { type: "string" },
          field: { type: "string" },
        },
      },
      Toolbox: {
        type: "object",
        properties: {
          account_id: { type: "string", format: "uuid" },
          user_id: { type: "string", format: "uuid" },
          status: { type: "string", enum: [...LIFECYCLE_STATUSES] },
          stack_name: { type: "string" },
          target: { type: ["string", "null"] },
          region: { type: ["string", "null"] },
          size: { type: ["string", "null"] },
          droplet_id: { type: ["string", "null"] },
          droplet_name: { type: ["string", "null"] },
          ipv4: { type: ["string", "null"] },
          ipv6: { type: ["string", "null"] },
          backend_url: { type: ["string", "null"] },
          outputs: { type: ["object", "null"] },
          last_heartbeat_at: { type: ["string", "null"], format: "date-time" },
          health: { type: "string", enum: ["healthy", "stale", "unresponsive", "unknown"] },
          dtma_version: { type: ["string", "null"] },
          error_message: { type: ["string", "null"] },
        },
      },
      Operation: {
        type: "object",
        properties: {
          id: { type: "string", format: "uuid" },
          account_id: { type: "string", format: "uuid" },
          kind: {
            type: "string",
            enum: ["provision", "deprovision", "refresh", "rotate_tokens", "upgrade", "rollback"],
          },
          status: { type: "string", enum: ["queued", "running", "succeeded", "failed"] },
          attempts: { type: "integer" },
          error_message: { type: ["string", "null"] },
          result: {},
          events_url: { type: "string" },
        },
      },
      Accepted: {
        type: "object",
        properties: {
          toolbox: { $ref: "#/components/schemas/Toolbox" },
          operation: { $ref: "#/components/schemas/Operation" },
        },
      },
    },
  },
  paths: {
    ...fleetPaths,
    "/v1/toolboxes": {
      post: {
        summary: "Provision the account's toolbox (idempotent per account)",
        security: bearer,
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["account_id"],
                additionalProperties: false,
                properties: {
                  account_id: { type: "string", format: "uuid" },
                  region: { type: "string" },
                  size: { type: "string" },
                },
              },
            },
          },
        },
        responses: {
          "200": json("already provisioned: { toolbox }", "Accepted"),
          "202": json("queued, or the provision already queued/running", "Accepted"),
          "409": err("another kind of operation is in progress"),
          ...common,
        },
      },
    },
    "/v1/toolboxes/{account_id}": {
      parameters: [accountParam],
      get: {
        summary: "Status, public outputs, last heartbeat, health",
        security: bearer,
        responses: { "200": json("{ toolbox }", "Accepted"), "404": err("no toolbox"), ...common },
      },
      delete: {
        summary: "Destroy the stack; the record ends deprovisioned",
        security: bearer,
        responses: {
          "200": json("already deprovisioned", "Accepted"),
          "202": json("queued", "Accepted"),
          "404": err("no toolbox"),
          "409": err("another operation in progress"),
          ...common,
        },
      },
    },
    "/v1/toolboxes/{account_id}/refresh": {
      parameters: [accountParam],
      post: {
        summary: "Drift check: refresh then preview; the report is the operation's result",
        security: bearer,
        responses: {
          "202": json("queued", "Accepted"),
          "404": err("no toolbox"),
          "409": err("another operation in progress"),
          ...common,
        },
      },
    },
    "/v1/toolboxes/{account_id}/rotate-tokens": {
      parameters: [accountParam],
      post: {
        summary:
          "New tokens without a new droplet (service token only): the generation is raised and the stack updated; the previous DTMA token keeps working for one rotation",
        security: bearer,
        responses: {
          "202": json("queued", "Accepted"),
          "404": err("no toolbox"),
          "409": err("not provisioned, or another operation in progress"),
          ...common,
        },
      },
    },
    "/v1/toolboxes/{account_id}/tokens": {
      parameters: [accountParam],
      get: {
        summary: "The toolbox's tokens (service token only)",
        security: bearer,
        responses: {
          "200": {
            description: "dtma_token, dtma_token_previous, backend_api_token, agent_gateway_token",
          },
          "404": err("not provisioned"),
          ...common,
        },
      },
    },
    "/v1/operations/{id}": {
      parameters: [
        { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } },
      ],
      get: {
        summary: "An operation",
        security: bearer,
        responses: {
          "200": json("{ operation }", "Operation"),
          "404": err("no such operation"),
          ...common,
        },
      },
    },
    "/v1/operations/{id}/events": {
      parameters: [
        { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } },
      ],
      get: {
        summary: "Server-sent events from the start (or after Last-Event-ID), ending with `end`",
        security: bearer,
        responses: { "200": { description: "text/event-stream" }, ...common },
      },
    },
    "/v1/heartbeat": {
      post: {
        summary: "DTMA heartbeat",
        description:
          "Sets the toolbox's heartbeat fields and moves it to active; each tool_statuses[] item " +
          "updates its account_tool_instances row (status_on_toolbox from the Docker state, " +
          "last_heartbeat_from_dtma) when that instance is on this toolbox; others are ignored.",
        security: [{ dtmaToken: [] }],
        responses: {
          "204": { description: "recorded" },
          "400": err("bad body"),
          "401": err("unknown token"),
        },
      },
    },
    "/healthz": { get: { summary: "Liveness", responses: { "200": { description: "ok" } } } },
    "/readyz": {
      get: {
        summary: "Readiness (database and queue)",
        responses: { "200": { description: "ready" }, "503": { description: "not ready" } },
      },
    },
    "/metrics": {
      get: {
        summary: "Prometheus metrics (service token)",
        security: bearer,
        responses: {
          "200": { description: "text" },
          "401": err("no token"),
          "403": err("not the service token"),
        },
      },
    },
  },
} as const;
