import { HttpError, bearerToken } from "../auth/auth";
import { heartbeatBody, recordHeartbeat } from "../heartbeat";
import { refusal, type RouteDoc } from "../openapi";
import type { AppDeps } from "./deps";
import type { RouteApp } from "./validation";

export function systemRoutes(app: RouteApp, deps: AppDeps): void {
  // Health endpoints are the only unauthenticated routes and reveal nothing but up/ready.
  const open = (openapi: RouteDoc) => ({ config: { auth: "none" as const, openapi } });
  app.get(
    "/healthz",
    open({ summary: "Liveness", responses: { "200": { description: "ok" } } }),
    () => Promise.resolve({ status: "ok" }),
  );

  const readiness = {
    summary: "Readiness (database and queue)",
    responses: { "200": { description: "ready" }, "503": { description: "not ready" } },
  };
  app.get("/readyz", open(readiness), async (_req, reply) => {
    const ready = await deps.ready().catch(() => false);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready" });
  });

  const metrics = {
    summary: "Prometheus metrics (service token)",
    responses: {
      "200": { description: "Prometheus text", content: { "text/plain": {} } },
      "401": refusal("no token"),
      "403": refusal("not the service token"),
    },
  };
  app.get("/metrics", { config: { auth: "service", openapi: metrics } }, async (_req, reply) => {
    return reply
      .type(deps.metrics.registry.contentType)
      .send(await deps.metrics.registry.metrics());
  });

  const heartbeat = {
    summary: "DTMA heartbeat",
    description:
      "Sets the toolbox's heartbeat fields and moves it to active; each tool_statuses[] item " +
      "updates its account_tool_instances row (status_on_toolbox from the Docker state, " +
      "last_heartbeat_from_dtma) when that instance is on this toolbox; others are ignored.",
    responses: {
      "204": { description: "recorded" },
      "400": refusal("bad body"),
      "401": refusal("unknown token"),
    },
  };
  const dtma = {
    schema: { body: heartbeatBody },
    config: { auth: "dtma" as const, openapi: heartbeat },
  };

  /**
   * The DTMA's heartbeat: its own token is the credential, looked up by hash before the body is
   * read (the guard); the body is checked before it is stored (jsonBody.ts, then the schema).
   */
  app.post("/v1/heartbeat", dtma, async (req, reply) => {
    const token = bearerToken(req)!;
    const result = await recordHeartbeat(deps.pool, token, req.body);
    if (!result.known) throw new HttpError(401, "unauthorized", "unknown DTMA token");
    if (result.foreign.length > 0) {
      // A DTMA naming another toolbox's instances is misconfigured or hostile: never updated.
      req.log.warn(
        { instanceIds: result.foreign },
        "heartbeat named tool instances of another toolbox; ignored",
      );
    }
    if (result.unknown.length > 0) {
      req.log.info({ instanceIds: result.unknown }, "heartbeat named unknown tool instances");
    }
    deps.metrics.heartbeat();
    return reply.code(204).send();
  });
}
