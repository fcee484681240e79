/**
 * A fleet upgrade is requested: its durable plan is recorded (one target row per toolbox, with
 * its wave and the images it had) and its driver (upgradeDriver.ts) queued. Every toolbox's
 * step is then an `upgrade` operation of its account, through the same queue and engine seam as
 * the account's own operations.
 */
import type { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import { transaction } from "../db/transaction";
import { addFleetEvents } from "./events";
import { assignWaves } from "./plan";
import { enqueueFleet } from "./queue";
import { lockFleetRequests, openFleetOperation, type FleetOperationRow } from "./records";
import type { UpgradePlan, UpgradeSettings } from "./upgradeRequest";

export type CreateOutcome =
  | { outcome: "created"; upgrade: FleetOperationRow }
  | { outcome: "conflict"; upgrade: FleetOperationRow }
  | { outcome: "invalid"; field: string; message: string };

/**
 * Records the upgrade and its plan in one transaction: the operation, one target per live
 * toolbox of the service (operator canaries are the operators' to upgrade) with its wave and
 * the images it had, the first event, and the driver's job. One unfinished upgrade per
 * environment: a second is a conflict naming the first.
 */
export async function createUpgrade(
  pool: Pool,
  boss: PgBoss,
  settings: UpgradeSettings,
  plan: UpgradePlan,
  requestedBy: string,
): Promise<CreateOutcome> {
  return transaction(pool, async (tx) => {
    await lockFleetRequests(tx, "upgrade", settings.environment);
    const { rows: toolboxes } = await tx.query<{
      id: string;
      account_id: string;
      dtma_image: string | null;
      backend_image: string | null;
      deployed_dtma_image: string | null;
      deployed_backend_image: string | null;
    }>(
      `select id, account_id, dtma_image, backend_image, deployed_dtma_image, deployed_backend_image
       from account_tool_environments
       where managed_by = 'service' and status not in ('deprovisioned', 'inactive')
       order by account_id`,
    );
    const accounts = toolboxes.map((t) => t.account_id);
    const known = new Set(accounts);
    const missing = (plan.canary_accounts ?? []).findIndex((a) => !known.has(a.toLowerCase()));
    if (missing >= 0) {
      return {
        outcome: "invalid",
        field: `canary_accounts.${missing}`,
        message: `canary_accounts.${missing}: no live toolbox of the service has this account`,
      };
    }
    const open = await openFleetOperation(tx, "upgrade", settings.environment);
    if (open) return { outcome: "conflict", upgrade: open };
    const { rows } = await tx.query<FleetOperationRow>(
      `insert into fleet_operations (kind, environment, status, request_json, requested_by, result_json)
       values ('upgrade', $1, 'queued', $2, $3, '{}') returning *`,
      [settings.environment, JSON.stringify(plan), requestedBy],
    );
    const upgrade = rows[0];
    const waves = assignWaves({
      accounts,
      canaries: plan.canary_accounts
        ? { accounts: plan.canary_accounts.map((a) => a.toLowerCase()) }
        : { count: plan.canary_count ?? 0 },
      waves: plan.waves,
      seed: upgrade.id,
    });
    await tx.query(
      `insert into fleet_upgrade_targets (upgrade_id, environment_id, account_id, wave,
         previous_dtma_setting, previous_backend_setting, previous_dtma_image, previous_backend_image)
       select $1, t.environment_id, t.account_id, t.wave, t.dtma_setting, t.backend_setting,
         t.dtma_image, t.backend_image
       from jsonb_to_recordset($2::jsonb) as t(environment_id uuid, account_id uuid, wave int,
         dtma_setting text, backend_setting text, dtma_image text, backend_image text)`,
      [
        upgrade.id,
        JSON.stringify(
          toolboxes.map((t) => ({
            environment_id: t.id,
            account_id: t.account_id,
            wave: waves.get(t.account_id),
            dtma_setting: t.dtma_image,
            backend_setting: t.backend_image,
            dtma_image: t.deployed_dtma_image,
            backend_image: t.deployed_backend_image,
          })),
        ),
      ],
    );
    const sizes = [...waves.values()].reduce<Record<string, number>>((acc, w) => {
      acc[w] = (acc[w] ?? 0) + 1;
      return acc;
    }, {});
    await addFleetEvents(tx, upgrade.id, [
      {
        type: "created",
        message: `upgrade of ${accounts.length} toolbox(es) to ${plan.dtma_image} / ${plan.backend_image} requested by ${requestedBy}`,
        data: { plan, wave_sizes: sizes },
      },
    ]);
    await enqueueFleet(boss, tx, { operationId: upgrade.id, kind: "upgrade" });
    return { outcome: "created", upgrade };
  });
}
