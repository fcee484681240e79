import type { FastifyInstance } from "fastify";
import { authorizeAccount, HttpError } from "../auth/auth";
import { getOperation } from "../db/rows";
import { OPERATION_EVENTS } from "../events/operationEvents";
import type { AppDeps } from "./deps";
import { operationView } from "./views";
import { operationParams, parse } from "./validation";

export function operationRoutes(app: FastifyInstance, deps: AppDeps): void {
  const load = async (params: unknown, req: Parameters<AppDeps["authenticate"]>[0]) => {
    const principal = await deps.authenticate(req);
    const { id } = parse(operationParams, params, "id");
    const op = await getOperation(deps.pool, id);
    if (!op) throw new HttpError(404, "not_found", "no such operation");
    authorizeAccount(principal, op.account_id);
    return op;
  };

  app.get("/v1/operations/:id", async (req) => ({
    operation: operationView(await load(req.params, req)),
  }));

  /**
   * Server-sent events: every recorded event from the start (or after Last-Event-ID), then new
   * ones as workers anywhere write them (woken by NOTIFY, not polled), then `end` once the
   * operation is final. A principal holds at most so many streams at once (429 beyond).
   */
  app.get("/v1/operations/:id/events", async (req, reply) => {
    const op = await load(req.params, req);
    deps.events.serve(OPERATION_EVENTS, op.id, await deps.authenticate(req), req, reply);
  });
}
