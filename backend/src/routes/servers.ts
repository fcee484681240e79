import type { Tool, ToolSpec } from "@agentopia-toolboxes/dtma/api";
import { TOOL_NAME_PATTERN, TOOL_NAME_RULE } from "@agentopia-toolboxes/dtma/api";
import type { DtmaClient } from "@agentopia-toolboxes/dtma/client";
import { HttpError, type Route } from "@agentopia-toolboxes/servicekit/http";
import type { Logger } from "pino";
import { viaDtma } from "../servers/dtmaErrors";
import type { ServerRegistry } from "../servers/registry";
import { scrub } from "../servers/scrub";
import { listAllTools } from "../servers/tools";
import { serverView } from "../servers/view";
import { UpstreamUnavailable, type JsonObject } from "../upstream/types";

export interface ServerRouteDeps {
  dtma: DtmaClient;
  registry: ServerRegistry;
  log: Logger;
  /** Agent sessions open on a server now (the MCP edge's count). */
  sessions(server: string): number;
  deployTimeoutMs: { default: number; max: number };
  /** How long a read (GET of one server) waits for the server's lane and tools. */
  readTimeoutMs: number;
}

/** Lines of the server's log sent back with a failed deploy or start. */
const LOG_TAIL = 20;
const LOG_LINE_MAX = 500;
/** A DTMA deploy body is at most 128 KiB; ours adds `timeout_seconds`. */
const DEPLOY_BODY_LIMIT = 160 * 1024;

const ACTIONS = ["start", "stop", "restart"] as const;

function validName(name: string): string {
  if (!TOOL_NAME_PATTERN.test(name)) {
    throw new HttpError(400, "invalid_request", `name: ${TOOL_NAME_RULE}`, "name");
  }
  return name;
}

/** The deploy body is the DTMA's spec plus the gateway's own `timeout_seconds`. */
function deployRequest(body: unknown, timeouts: ServerRouteDeps["deployTimeoutMs"]) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "invalid_request", "the body must be a JSON object", "body");
  }
  const { timeout_seconds: timeout, ...spec } = body as Record<string, unknown>;
  let timeoutMs = timeouts.default;
  if (timeout !== undefined) {
    const max = timeouts.max / 1000;
    if (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 1 || timeout > max) {
      throw new HttpError(
        400,
        "invalid_request",
        `timeout_seconds must be a whole number from 1 to ${max}`,
        "timeout_seconds",
      );
    }
    timeoutMs = timeout * 1000;
  }
  const transport = spec.transport as { type?: unknown } | undefined;
  if (transport?.type === "http" && spec.network === "none") {
    throw new HttpError(
      400,
      "invalid_request",
      "an http server on network none cannot be reached by the gateway; use egress",
      "network",
    );
  }
  return { spec: spec as unknown as ToolSpec, timeoutMs };
}

/** The values a failed deploy's answer must never carry back (its own secrets). */
function secretsOf(spec: ToolSpec): string[] {
  const auth = spec.registry_auth ?? {};
  return [
    ...Object.values(spec.secrets ?? {}),
    ...[auth.password, auth.identitytoken].filter((v): v is string => typeof v === "string"),
  ];
}

export function serverRoutes(deps: ServerRouteDeps): Route[] {
  const { dtma, registry } = deps;

  const lastLogLines = async (name: string, secrets: string[]): Promise<string[]> => {
    try {
      const logs = await dtma.toolLogs(name, { tail: LOG_TAIL });
      return logs.entries.map((e) => scrub(e.text, secrets).slice(0, LOG_LINE_MAX));
    } catch {
      return [];
    }
  };

  /**
   * Waits until the server has completed an MCP initialize through the gateway (its lane) and
   * lists its tools the way agents will; a failure answers 422 with the server's last log lines.
   */
  const ready = async (tool: Tool, timeoutMs: number, secrets: string[] = []) => {
    const server = registry.upsert(tool);
    server.supervisor.reset();
    const deadline = Date.now() + timeoutMs;
    try {
      if (tool.state !== "running") {
        const waited = await viaDtma(() =>
          dtma.waitForTool(tool.name, "running", Math.max(1, Math.ceil(timeoutMs / 1000))),
        );
        if (!waited.reached || !waited.tool)
          throw new Error(`the server is ${waited.tool?.state ?? "gone"}`);
        tool = waited.tool;
        registry.upsert(tool);
      }
      const lane = await server.supervisor.lane(Math.max(1, deadline - Date.now()));
      const tools = await listAllTools(lane, Math.max(1, deadline - Date.now()));
      return { tool, tools };
    } catch (err) {
      if (err instanceof HttpError && err.code === "dtma_unavailable") throw err;
      const reason =
        err instanceof UpstreamUnavailable || err instanceof Error ? err.message : String(err);
      const logs = await lastLogLines(tool.name, secrets);
      throw new HttpError(
        422,
        "server_not_ready",
        scrub(`server '${tool.name}' did not complete an MCP initialize: ${reason}`, secrets),
        undefined,
        { logs },
      );
    }
  };

  const sessions = (name: string) => deps.sessions(name);

  /** The tools a server offers now, or why they cannot be listed (a read waits only briefly). */
  const toolsOf = async (tool: Tool): Promise<{ list: JsonObject[] | null; error?: string }> => {
    if (tool.state !== "running") return { list: null, error: `the server is ${tool.state}` };
    try {
      const lane = await registry.upsert(tool).supervisor.lane(deps.readTimeoutMs);
      return { list: await listAllTools(lane, deps.readTimeoutMs) };
    } catch (err) {
      return { list: null, error: (err as Error).message };
    }
  };

  return [
    {
      method: "GET",
      path: "/v1/servers",
      handler: async () => {
        const tools = await viaDtma(() => registry.refresh());
        return {
          status: 200,
          body: {
            servers: tools.map((t) => serverView(t, registry.get(t.name), sessions(t.name))),
          },
        };
      },
    },
    {
      method: "PUT",
      path: "/v1/servers/:name",
      body: true,
      bodyLimitBytes: DEPLOY_BODY_LIMIT,
      handler: async ({ params, body }) => {
        const name = validName(params.name);
        const { spec, timeoutMs } = deployRequest(body, deps.deployTimeoutMs);
        const deployed = await viaDtma(() => dtma.deployTool(name, spec));
        const { created, changed, ...tool } = deployed;
        const { tool: current, tools } = await ready(tool, timeoutMs, secretsOf(spec));
        deps.log.info({ server: name, created, changed, tools: tools.length }, "server deployed");
        return {
          status: created ? 201 : 200,
          body: {
            ...serverView(current, registry.get(name), sessions(name), { list: tools }),
            created,
            changed,
          },
        };
      },
    },
    {
      method: "GET",
      path: "/v1/servers/:name",
      handler: async ({ params }) => {
        const name = validName(params.name);
        const tool = await viaDtma(() => dtma.getTool(name));
        const server = registry.upsert(tool);
        return { status: 200, body: serverView(tool, server, sessions(name), await toolsOf(tool)) };
      },
    },
    ...ACTIONS.map((action): Route => ({
      method: "POST",
      path: `/v1/servers/:name/${action}`,
      handler: async ({ params }) => {
        const name = validName(params.name);
        if (action !== "start")
          registry.get(name)?.supervisor.shutdown(`the server is ${action}ping`);
        const tool = await viaDtma(() =>
          action === "start"
            ? dtma.startTool(name)
            : action === "stop"
              ? dtma.stopTool(name)
              : dtma.restartTool(name),
        );
        if (action === "stop") {
          registry.upsert(tool);
          return { status: 200, body: serverView(tool, registry.get(name), sessions(name)) };
        }
        const { tool: current, tools } = await ready(tool, deps.deployTimeoutMs.default);
        return {
          status: 200,
          body: serverView(current, registry.get(name), sessions(name), { list: tools }),
        };
      },
    })),
    {
      method: "DELETE",
      path: "/v1/servers/:name",
      handler: async ({ params }) => {
        const name = validName(params.name);
        registry.get(name)?.supervisor.shutdown("the server is being removed");
        await viaDtma(() => dtma.removeTool(name));
        registry.forget(name);
        deps.log.info({ server: name }, "server removed");
        return { status: 204 };
      },
    },
    {
      method: "GET",
      path: "/v1/servers/:name/logs",
      handler: async ({ params, query }) => {
        const name = validName(params.name);
        const tail = query.get("tail");
        if (tail !== null && !/^\d{1,9}$/.test(tail)) {
          throw new HttpError(400, "invalid_query", "tail must be a whole number", "tail");
        }
        const since = query.get("since");
        // The DTMA checks the ranges and the date, and names the parameter when they are wrong.
        const logs = await viaDtma(() =>
          dtma.toolLogs(name, {
            ...(tail !== null ? { tail: Number(tail) } : {}),
            ...(since !== null ? { since } : {}),
          }),
        );
        return { status: 200, body: logs };
      },
    },
  ];
}
