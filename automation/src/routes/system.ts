import type { FastifyInstance } from "fastify";
import { HttpError, bearerToken, requireService } from "../auth/auth";
import { heartbeatBody, recordHeartbeat } from "../heartbeat";
import type { AppDeps } from "../app";
import { openApiDocument } from "../openapi";
import { parse } from "./validation";

export function systemRoutes(app: FastifyInstance, deps: AppDeps): void {
  // Health endpoints are unauthenticated and reveal nothing but up/ready.
  app.get("/healthz", () => Promise.resolve({ status: "ok" }));

  app.get("/readyz", async (_req, reply) => {
    const ready = await deps.ready().catch(() => false);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready" });
  });

  app.get("/metrics", async (req, reply) => {
    requireService(await deps.authenticate(req));
    return reply
      .type(deps.metrics.registry.contentType)
      .send(await deps.metrics.registry.metrics());
  });

  app.get("/openapi.json", () => Promise.resolve(openApiDocument));

  /** The DTMA's heartbeat: its own token is the credential, looked up by hash. */
  app.post("/v1/heartbeat", async (req, reply) => {
    const token = bearerToken(req);
    if (!token) throw new HttpError(401, "unauthorized", "a bearer token is required");
    const body = parse(heartbeatBody, req.body, "body");
    if (!(await recordHeartbeat(deps.pool, token, body))) {
      throw new HttpError(401, "unauthorized", "unknown DTMA token");
    }
    deps.metrics.heartbeat();
    return reply.code(204).send();
  });
}
