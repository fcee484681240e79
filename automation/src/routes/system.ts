import type { FastifyInstance } from "fastify";
import { HttpError, bearerToken } from "../auth/auth";
import { heartbeatBody, recordHeartbeat } from "../heartbeat";
import type { AppDeps } from "./deps";
import { openApiDocument } from "../openapi";
import { parse } from "./validation";

export function systemRoutes(app: FastifyInstance, deps: AppDeps): void {
  // Health endpoints are the only unauthenticated routes and reveal nothing but up/ready.
  const open = { config: { auth: "none" as const } };
  app.get("/healthz", open, () => Promise.resolve({ status: "ok" }));

  app.get("/readyz", open, async (_req, reply) => {
    const ready = await deps.ready().catch(() => false);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready" });
  });

  app.get("/metrics", { config: { auth: "service" } }, async (_req, reply) => {
    return reply
      .type(deps.metrics.registry.contentType)
      .send(await deps.metrics.registry.metrics());
  });

  app.get("/openapi.json", () => Promise.resolve(openApiDocument));

  /**
   * The DTMA's heartbeat: its own token is the credential, looked up by hash before the body is
   * read (the guard); the body is checked before it is stored (jsonBody.ts, then the schema).
   */
  app.post("/v1/heartbeat", { config: { auth: "dtma" } }, async (req, reply) => {
    const token = bearerToken(req)!;
    const body = parse(heartbeatBody, req.body, "body");
    const result = await recordHeartbeat(deps.pool, token, body);
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
