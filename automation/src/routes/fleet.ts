import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { HttpError, requireService } from "../auth/auth";
import { reconcileRoutes } from "./reconcile";
import { upgradeRoutes, type FleetRouteDeps } from "./upgrades";
import { uuid } from "../ids";
import { apiRoute, prose, refusal } from "../openapi";
import { accountParams, type RouteApp } from "./validation";

const versionsQuery = z
  .object({
    after: uuid.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  })
  .strict();

/** What the settings deploy where a record has no images of its own. */
export interface DeployedDefaults {
  dtmaImage?: string;
  backendImage?: string;
}

interface VersionRow {
  account_id: string;
  status: string;
  managed_by: string;
  dtma_image: string | null;
  backend_image: string | null;
  deployed_dtma_image: string | null;
  deployed_backend_image: string | null;
  images_deployed_at: Date | null;
  reported_dtma_image: string | null;
  dtma_version: string | null;
  last_heartbeat_at: Date | null;
}

/**
 * "Which version does each toolbox run, and since when": the images its last `up` deployed and
 * since when (with the history of every change), what its record asks for, and what its DTMA
 * last reported.
 */
function fleetRoutes(app: RouteApp, deps: FleetRouteDeps & { defaults: DeployedDefaults }): void {
  const caller = async (req: FastifyRequest) => requireService(await deps.authenticate(req));
  const view = (r: VersionRow) => ({
    account_id: r.account_id,
    status: r.status,
    managed_by: r.managed_by,
    deployed: {
      dtma_image: r.deployed_dtma_image,
      backend_image: r.deployed_backend_image,
      since: r.images_deployed_at,
    },
    wanted: {
      dtma_image: r.dtma_image ?? deps.defaults.dtmaImage ?? null,
      backend_image: r.backend_image ?? deps.defaults.backendImage ?? null,
      source: r.dtma_image !== null || r.backend_image !== null ? "record" : "settings",
    },
    reported: {
      dtma_image: r.reported_dtma_image,
      dtma_version: r.dtma_version,
      at: r.last_heartbeat_at,
    },
  });
  const select = `select account_id::text, status::text, managed_by, dtma_image, backend_image,
      deployed_dtma_image, deployed_backend_image, images_deployed_at,
      dtma_health_details_json->>'dtma_image' as reported_dtma_image,
      dtma_last_known_version as dtma_version, last_heartbeat_at
    from account_tool_environments`;

  const versions = {
    summary: "Which images each live toolbox runs and since when",
    responses: { "200": prose("{ toolboxes: [{deployed, wanted, reported}], next }") },
  };
  const versionsRoute = apiRoute("service", versions, { querystring: versionsQuery });
  app.get("/v1/fleet/versions", versionsRoute, async (req) => {
    await caller(req);
    const q = req.query;
    const { rows } = await deps.pool.query<VersionRow>(
      `${select} where status not in ('deprovisioned', 'inactive')
         and ($1::uuid is null or account_id > $1) order by account_id limit $2`,
      [q.after ?? null, q.limit],
    );
    return {
      toolboxes: rows.map(view),
      next: rows.length === q.limit ? rows[rows.length - 1].account_id : null,
    };
  });

  const one = {
    summary: "One toolbox's images and their history",
    responses: { "200": prose("{ toolbox, history }"), "404": refusal("no toolbox") },
  };
  const oneRoute = apiRoute("service", one, { params: accountParams });
  app.get("/v1/fleet/versions/:account_id", oneRoute, async (req) => {
    await caller(req);
    const { account_id } = req.params;
    const { rows } = await deps.pool.query<VersionRow>(`${select} where account_id = $1`, [
      account_id,
    ]);
    if (!rows[0]) throw new HttpError(404, "not_found", "no toolbox for this account");
    const { rows: history } = await deps.pool.query<{
      dtma_image: string | null;
      backend_image: string | null;
      since: Date;
    }>(
      `select h.dtma_image, h.backend_image, h.since from toolbox_image_history h
       where h.account_id = $1 order by h.id desc limit 100`,
      [account_id],
    );
    return { toolbox: view(rows[0]), history };
  });
}

/** What the app needs to serve the fleet routes (the rest comes from the app itself). */
export interface FleetApi {
  boss: FleetRouteDeps["boss"];
  settings: FleetRouteDeps["settings"];
  defaults: DeployedDefaults;
}

/** Upgrades, reconciliations and versions: every fleet route. */
export function registerFleetRoutes(
  app: RouteApp,
  deps: FleetRouteDeps & { defaults: DeployedDefaults },
): void {
  upgradeRoutes(app, deps);
  reconcileRoutes(app, deps);
  fleetRoutes(app, deps);
}
