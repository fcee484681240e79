import { z } from "zod";
import { FLEET_EVENTS } from "../fleet/events";
import { startReconciliation } from "../fleet/reconcile";
import { reconcileRequest } from "../fleet/reconcileRequest";
import type { FleetOperationRow } from "../fleet/records";
import { fleetOperationView } from "../fleet/views";
import { fleetAccess, who, type FleetRouteDeps } from "./upgrades";
import { apiRoute, eventStream, prose, refusal, tooManyStreams } from "../openapi";
import { operationParams, type RouteApp } from "./validation";

const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) }).strict();

/** Reconciliation runs (service token only): start one (a dry run by default), follow it. */
export function reconcileRoutes(app: RouteApp, deps: FleetRouteDeps): void {
  const { caller, load } = fleetAccess(deps, "reconcile", "reconciliation");
  const byId = { params: operationParams };

  const start = {
    summary: "Start a reconciliation run (service token): a dry run unless dry_run is false",
    responses: {
      "202": prose("{ reconciliation }"),
      "409": refusal("a run is unfinished (reconciliation_in_progress)"),
    },
  };
  const startRoute = apiRoute("service", start, { body: reconcileRequest });
  app.post("/v1/reconciliations", startRoute, async (req, reply) => {
    const principal = await caller(req);
    const out = await startReconciliation(
      deps.pool,
      deps.boss,
      deps.settings.environment,
      req.body,
      who(principal),
    );
    if (out.outcome === "conflict") {
      return reply.code(409).send({
        error: "reconciliation_in_progress",
        message: `reconciliation ${out.run.id} is ${out.run.status}; one at a time per environment`,
        reconciliation: fleetOperationView(out.run),
      });
    }
    return reply.code(202).send({ reconciliation: fleetOperationView(out.run) });
  });

  const list = { summary: "Recent runs", responses: { "200": prose("{ reconciliations }") } };
  const listRoute = apiRoute("service", list, { querystring: listQuery });
  app.get("/v1/reconciliations", listRoute, async (req) => {
    await caller(req);
    const q = req.query;
    const { rows } = await deps.pool.query<FleetOperationRow>(
      "select * from fleet_operations where kind = 'reconcile' order by created_at desc limit $1",
      [q.limit],
    );
    return { reconciliations: rows.map(fleetOperationView) };
  });

  const one = {
    summary: "A run; its result is the report: counts and findings (kind, reason, action)",
    responses: { "200": prose("{ reconciliation }"), "404": refusal("no such run") },
  };
  app.get("/v1/reconciliations/:id", apiRoute("service", one, byId), async (req) => ({
    reconciliation: fleetOperationView(await load(req)),
  }));

  const events = {
    summary: "Server-sent events of a run, ending with `end`",
    responses: { "200": eventStream, "404": refusal("no such run"), "429": tooManyStreams },
  };
  const eventsRoute = apiRoute("service", events, byId);
  app.get("/v1/reconciliations/:id/events", eventsRoute, async (req, reply) => {
    const op = await load(req);
    deps.events.serve(FLEET_EVENTS, op.id, await deps.authenticate(req), req, reply);
  });
}
