import type { Status as DtmaStatus } from "@agentopia-toolboxes/dtma/api";
import { DtmaError, DtmaUnavailable, type DtmaClient } from "@agentopia-toolboxes/dtma/client";
import { metricsRoute, preparedReply, type Route } from "@agentopia-toolboxes/servicekit/http";
import type { Metrics } from "../metrics";
import type { ServerRegistry } from "../servers/registry";

const JSON_TYPE = "application/json; charset=utf-8";
const HEALTH = preparedReply(JSON.stringify({ status: "ok" }), JSON_TYPE);

export interface SystemRouteDeps {
  dtma: DtmaClient;
  registry: ServerRegistry;
  metrics: Metrics;
  version: string;
  /** The image this backend runs (BACKEND_IMAGE), when the container spec passes it. */
  image?: string;
  bootId: string;
  startedAt: number;
  /** Agent sessions by server (the MCP edge's count). */
  sessions(): Record<string, number>;
  revocations(): number;
  /** The OpenAPI document of this API. */
  openapi: () => unknown;
}

type DtmaView = DtmaStatus | { reachable: false; error: string };

async function dtmaStatus(dtma: DtmaClient): Promise<DtmaView> {
  try {
    return await dtma.status();
  } catch (err) {
    if (err instanceof DtmaUnavailable) return { reachable: false, error: err.reason };
    if (err instanceof DtmaError)
      return { reachable: false, error: `${err.status} ${err.body.error}` };
    throw err;
  }
}

export function systemRoutes(deps: SystemRouteDeps): Route[] {
  return [
    // No token and no version: the container health check calls it.
    { method: "GET", path: "/health", auth: "none", handler: () => HEALTH },
    {
      method: "GET",
      path: "/status",
      // The backend's own state and the DTMA's /status, so the control plane refreshes a toolbox
      // with one call.
      handler: async () => {
        const dtma = await dtmaStatus(deps.dtma);
        const sessions = deps.sessions();
        const healthy = "status" in dtma && dtma.status === "ok";
        return {
          status: 200,
          body: {
            status: healthy ? "ok" : "degraded",
            service: "backend",
            version: deps.version,
            ...(deps.image ? { image: deps.image } : {}),
            boot_id: deps.bootId,
            uptime_seconds: Math.floor((Date.now() - deps.startedAt) / 1000),
            sessions: {
              total: Object.values(sessions).reduce((a, b) => a + b, 0),
              by_server: sessions,
            },
            servers: deps.registry.list().map((s) => {
              const v = s.supervisor.view();
              return {
                name: s.name,
                transport: s.transport,
                isolation: s.isolation,
                running: s.running,
                lane: v.state,
                failures: v.failures,
                last_error: v.lastError,
                in_flight: v.inFlight,
                session_lanes: v.sessionLanes,
                sessions: sessions[s.name] ?? 0,
              };
            }),
            agent_token_revocations: deps.revocations(),
            dtma,
          },
        };
      },
    },
    metricsRoute(deps.metrics),
    {
      method: "GET",
      path: "/openapi.json",
      handler: () => ({ status: 200, body: deps.openapi() }),
    },
  ];
}
