import type { WaitState } from "../api";
import { HttpError, type Route } from "@agentopia-toolboxes/servicekit/http";
import type { Metrics } from "../metrics";
import type { ToolManager } from "../tools/manager";

const WAIT_STATES: WaitState[] = ["running", "exited", "healthy", "removed"];

export function toolRoutes(deps: { tools: ToolManager; metrics: Metrics }): Route[] {
  const { tools, metrics } = deps;
  const counted = async <T>(operation: string, fn: () => Promise<T>): Promise<T> => {
    try {
      const result = await fn();
      metrics.toolOperations.inc({ operation, outcome: "ok" });
      return result;
    } catch (err) {
      metrics.toolOperations.inc({ operation, outcome: "failed" });
      throw err;
    }
  };
  const action = (name: "start" | "stop" | "restart"): Route => ({
    method: "POST",
    path: `/tools/:name/${name}`,
    handler: async ({ params }) => ({
      status: 200,
      body: await counted(name, () => tools.action(params.name, name)),
    }),
  });
  return [
    {
      method: "GET",
      path: "/tools",
      handler: async () => ({ status: 200, body: { tools: await tools.list() } }),
    },
    {
      method: "PUT",
      path: "/tools/:name",
      body: true,
      handler: async ({ params, body }) => {
        const { result, created } = await counted("deploy", () => tools.deploy(params.name, body));
        return { status: created ? 201 : 200, body: result };
      },
    },
    {
      method: "GET",
      path: "/tools/:name",
      handler: async ({ params }) => ({ status: 200, body: await tools.get(params.name) }),
    },
    {
      method: "DELETE",
      path: "/tools/:name",
      handler: async ({ params }) => {
        await counted("remove", () => tools.remove(params.name));
        return { status: 204 };
      },
    },
    action("start"),
    action("stop"),
    action("restart"),
    {
      method: "GET",
      path: "/tools/:name/logs",
      // Streamed by the handler, within the DTMA_LOGS_* limits.
      handler: async ({ params, query, res, signal }) => {
        const tail = intParam(query.get("tail"), "tail", 0, 10_000, 100);
        const since = sinceParam(query.get("since"));
        await tools.logs(params.name, tail, since, res, signal);
      },
    },
    {
      method: "GET",
      path: "/tools/:name/wait",
      handler: async ({ params, query, signal }) => {
        const state = (query.get("state") ?? "running") as WaitState;
        if (!WAIT_STATES.includes(state)) {
          throw new HttpError(
            400,
            "invalid_query",
            `state must be one of ${WAIT_STATES.join(", ")}`,
            "state",
          );
        }
        const timeout = intParam(query.get("timeout"), "timeout", 0, 60, 30);
        return { status: 200, body: await tools.wait(params.name, state, timeout * 1000, signal) };
      },
    },
  ];
}

function intParam(
  raw: string | null,
  field: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (raw === null || raw === "") return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new HttpError(
      400,
      "invalid_query",
      `${field} must be a whole number from ${min} to ${max}`,
      field,
    );
  }
  return Number(raw);
}

/** `since`: Unix seconds or an ISO 8601 date; 0 (everything) when absent. */
function sinceParam(raw: string | null): number {
  if (raw === null || raw === "") return 0;
  if (/^\d{1,12}$/.test(raw)) return Number(raw);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
  if (Number.isNaN(ms)) {
    throw new HttpError(
      400,
      "invalid_query",
      "since must be Unix seconds or an ISO 8601 date",
      "since",
    );
  }
  return Math.floor(ms / 1000);
}
