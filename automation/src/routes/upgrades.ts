import type { FastifyRequest } from "fastify";
import type { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import { z } from "zod";
import { HttpError, requireService, type Principal } from "../auth/auth";
import type { EventStreams } from "../events/eventStreams";
import { createUpgrade } from "../fleet/createUpgrade";
import { FLEET_EVENTS } from "../fleet/events";
import {
  getFleetOperation,
  TARGET_STATES,
  type FleetOperationRow,
  type TargetRow,
} from "../fleet/records";
import { controlUpgrade, type ControlAction } from "../fleet/upgradeControls";
import { upgradeRequest, type UpgradeSettings } from "../fleet/upgradeRequest";
import { targetView, upgradeView } from "../fleet/views";
import { uuid } from "../ids";
import { apiRoute, eventStream, prose, refusal, tooManyStreams } from "../openapi";
import { operationParams, type RouteApp } from "./validation";

export interface FleetRouteDeps {
  pool: Pool;
  boss: PgBoss;
  settings: UpgradeSettings;
  authenticate(req: FastifyRequest): Promise<Principal>;
  /** The app's event streams (fleet operations' among them). */
  events: EventStreams;
}

const listQuery = z
  .object({
    status: z.enum(["queued", "running", "stopped", "aborted", "succeeded", "failed"]).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
  })
  .strict();
const targetsQuery = z
  .object({
    state: z.enum(TARGET_STATES as [string, ...string[]]).optional(),
    wave: z.coerce.number().int().min(0).max(1000).optional(),
    after: uuid.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  })
  .strict();
/** Control bodies carry nothing (an empty body, or {}). */
const noBody = z.object({}).strict();

export const who = (p: Principal) => (p.kind === "service" ? "service" : `user:${p.userId}`);

/** The caller, who must hold the service token, and the fleet operation the path names. */
export function fleetAccess(deps: FleetRouteDeps, kind: FleetOperationRow["kind"], what: string) {
  const caller = async (req: FastifyRequest) => {
    const principal = await deps.authenticate(req);
    requireService(principal);
    return principal;
  };
  const load = async (
    req: FastifyRequest & { params: { id: string } },
  ): Promise<FleetOperationRow> => {
    await caller(req);
    const op = await getFleetOperation(deps.pool, req.params.id, kind);
    if (!op) throw new HttpError(404, "not_found", `no such ${what}`);
    return op;
  };
  return { caller, load };
}

/** Upgrades (service token only): start, follow, stop, resume, abort. */
export function upgradeRoutes(app: RouteApp, deps: FleetRouteDeps): void {
  const { caller, load } = fleetAccess(deps, "upgrade", "upgrade");
  const byId = { params: operationParams };
  const noSuch = refusal("no such upgrade");

  const start = {
    summary:
      "Start a fleet upgrade (service token): health-gated waves, one per environment at a time",
    responses: {
      "202": prose("{ upgrade }: status, plan, current_wave, counts by state and wave"),
      "409": refusal("another upgrade of this environment is unfinished (upgrade_in_progress)"),
    },
  };
  const startRoute = apiRoute("service", start, { body: upgradeRequest(deps.settings) });
  app.post("/v1/upgrades", startRoute, async (req, reply) => {
    const principal = await caller(req);
    const out = await createUpgrade(deps.pool, deps.boss, deps.settings, req.body, who(principal));
    if (out.outcome === "invalid")
      throw new HttpError(400, "invalid_request", out.message, out.field);
    if (out.outcome === "conflict") {
      return reply.code(409).send({
        error: "upgrade_in_progress",
        message: `upgrade ${out.upgrade.id} of ${deps.settings.environment} is ${out.upgrade.status}; one at a time per environment`,
        upgrade: await upgradeView(deps.pool, out.upgrade),
      });
    }
    return reply.code(202).send({ upgrade: await upgradeView(deps.pool, out.upgrade) });
  });

  const list = { summary: "Recent upgrades", responses: { "200": prose("{ upgrades }") } };
  app.get("/v1/upgrades", apiRoute("service", list, { querystring: listQuery }), async (req) => {
    await caller(req);
    const q = req.query;
    const { rows } = await deps.pool.query<FleetOperationRow>(
      `select * from fleet_operations where kind = 'upgrade' and ($1::text is null or status = $1)
       order by created_at desc limit $2`,
      [q.status ?? null, q.limit],
    );
    return { upgrades: await Promise.all(rows.map((r) => upgradeView(deps.pool, r))) };
  });

  const one = {
    summary: "An upgrade with its counts by state and wave",
    responses: { "200": prose("{ upgrade }"), "404": noSuch },
  };
  app.get("/v1/upgrades/:id", apiRoute("service", one, byId), async (req) => ({
    upgrade: await upgradeView(deps.pool, await load(req)),
  }));

  const targets = {
    summary: "Its toolboxes, each with its reason",
    responses: { "200": prose("{ toolboxes, next }"), "404": noSuch },
  };
  const targetsRoute = apiRoute("service", targets, { ...byId, querystring: targetsQuery });
  app.get("/v1/upgrades/:id/toolboxes", targetsRoute, async (req) => {
    const op = await load(req);
    const q = req.query;
    const { rows } = await deps.pool.query<TargetRow>(
      `select * from fleet_upgrade_targets where upgrade_id = $1
         and ($2::text is null or state = $2) and ($3::int is null or wave = $3)
         and ($4::uuid is null or account_id > $4)
       order by account_id limit $5`,
      [op.id, q.state ?? null, q.wave ?? null, q.after ?? null, q.limit],
    );
    return {
      toolboxes: rows.map(targetView),
      next: rows.length === q.limit ? rows[rows.length - 1].account_id : null,
    };
  });

  const events = {
    summary:
      "Server-sent events (per wave, per toolbox, with reasons), ending with `end` once finished",
    responses: { "200": eventStream, "404": noSuch, "429": tooManyStreams },
  };
  app.get("/v1/upgrades/:id/events", apiRoute("service", events, byId), async (req, reply) => {
    const op = await load(req);
    deps.events.serve(FLEET_EVENTS, op.id, await deps.authenticate(req), req, reply);
  });

  const controls: Record<ControlAction, string> = {
    stop: "Stop: nothing new starts, queued steps are withdrawn",
    resume: "Resume a stopped upgrade",
    abort: "Abort: toolboxes not started are skipped",
  };
  for (const action of ["stop", "resume", "abort"] as const satisfies ControlAction[]) {
    const control = {
      summary: controls[action],
      responses: {
        "200": prose("{ upgrade }"),
        "404": noSuch,
        "409": refusal("the upgrade can no longer be changed so (upgrade_not_changeable)"),
      },
    };
    const controlRoute = apiRoute("service", control, { ...byId, body: noBody });
    app.post(`/v1/upgrades/:id/${action}`, controlRoute, async (req, reply) => {
      const principal = await caller(req);
      const out = await controlUpgrade(deps.pool, deps.boss, req.params.id, action, who(principal));
      if (out.outcome === "not_found") throw new HttpError(404, "not_found", "no such upgrade");
      if (out.outcome === "conflict") {
        return reply.code(409).send({
          error: "upgrade_not_changeable",
          message: out.message,
          upgrade: await upgradeView(deps.pool, out.upgrade),
        });
      }
      return reply.code(200).send({ upgrade: await upgradeView(deps.pool, out.upgrade) });
    });
  }
}
