import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { FLEET_EVENTS } from "../fleet/events";
import { startReconciliation } from "../fleet/reconcile";
import { reconcileRequest } from "../fleet/reconcileRequest";
import type { FleetOperationRow } from "../fleet/records";
import { fleetOperationView } from "../fleet/views";
import { fleetAccess, who, type FleetRouteDeps } from "./upgrades";
import { parse } from "./validation";

const serviceOnly = { config: { auth: "service" as const } };
const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) }).strict();

/** Reconciliation runs (service token only): start one (a dry run by default), follow it. */
export function reconcileRoutes(app: FastifyInstance, deps: FleetRouteDeps): void {
  const { caller, load } = fleetAccess(deps, "reconcile", "reconciliation");

  app.post("/v1/reconciliations", serviceOnly, async (req, reply) => {
    const principal = await caller(req);
    const request = parse(reconcileRequest, req.body, "body");
    const out = await startReconciliation(
      deps.pool,
      deps.boss,
      deps.settings.environment,
      request,
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

  app.get("/v1/reconciliations", serviceOnly, async (req) => {
    await caller(req);
    const q = parse(listQuery, req.query, "query");
    const { rows } = await deps.pool.query<FleetOperationRow>(
      "select * from fleet_operations where kind = 'reconcile' order by created_at desc limit $1",
      [q.limit],
    );
    return { reconciliations: rows.map(fleetOperationView) };
  });

  app.get("/v1/reconciliations/:id", serviceOnly, async (req) => ({
    reconciliation: fleetOperationView(await load(req)),
  }));

  app.get("/v1/reconciliations/:id/events", serviceOnly, async (req, reply) => {
    const op = await load(req);
    deps.events.serve(FLEET_EVENTS, op.id, await deps.authenticate(req), req, reply);
  });
}
