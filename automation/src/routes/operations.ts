import { authorizeAccount, HttpError } from "../auth/auth";
import { getOperation } from "../db/rows";
import { OPERATION_EVENTS } from "../events/operationEvents";
import { answer, apiRoute, eventStream, refusal, tooManyStreams } from "../openapi";
import type { AppDeps } from "./deps";
import { operationView } from "./views";
import { operationParams, type RouteApp } from "./validation";

export function operationRoutes(app: RouteApp, deps: AppDeps): void {
  const load = async ({ id }: { id: string }, req: Parameters<AppDeps["authenticate"]>[0]) => {
    const principal = await deps.authenticate(req);
    const op = await getOperation(deps.pool, id);
    if (!op) throw new HttpError(404, "not_found", "no such operation");
    authorizeAccount(principal, op.account_id);
    return op;
  };

  const byId = { params: operationParams };
  const operation = {
    summary: "An operation",
    responses: {
      "200": answer("{ operation }", "OperationAnswer"),
      "404": refusal("no such operation"),
    },
  };
  app.get("/v1/operations/:id", apiRoute("principal", operation, byId), async (req) => ({
    operation: operationView(await load(req.params, req)),
  }));

  const events = {
    summary: "Server-sent events from the start (or after Last-Event-ID), ending with `end`",
    responses: {
      "200": eventStream,
      "404": refusal("no such operation"),
      "429": tooManyStreams,
    },
  };

  /**
   * Server-sent events: every recorded event from the start (or after Last-Event-ID), then new
   * ones as workers anywhere write them (woken by NOTIFY, not polled), then `end` once the
   * operation is final. A principal holds at most so many streams at once (429 beyond).
   */
  app.get("/v1/operations/:id/events", apiRoute("principal", events, byId), async (req, reply) => {
    const op = await load(req.params, req);
    deps.events.serve(OPERATION_EVENTS, op.id, await deps.authenticate(req), req, reply);
  });
}
