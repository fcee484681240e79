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
