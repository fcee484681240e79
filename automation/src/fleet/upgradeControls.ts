/**
 * The operator's controls of an upgrade (stop, resume, abort), and the withdrawal of queued
 * steps that stopping it, by hand or on a wave's failures, begins with.
 */
import type { Pool, PoolClient } from "pg";
import type { PgBoss } from "pg-boss";
import type { Queryable } from "../db/rows";
import { transaction } from "../db/transaction";
import { addFleetEvents } from "./events";
import { enqueueFleet } from "./queue";
import type { FleetOperationRow, FleetStatus } from "./records";

/**
 * Steps queued but not yet taken by a worker are withdrawn (the operation is failed as
 * cancelled, so a worker that fetches its job does nothing): their targets return to `pending`
 * and their records to the images they had. Steps already running finish and are verified.
 */
export async function withdrawQueuedSteps(
  db: Queryable,
  upgradeId: string,
  why: string,
): Promise<string[]> {
  const { rows } = await db.query<{ account_id: string }>(
    `with c as (
       update toolbox_operations o set status = 'failed', error_message = $2, finished_at = now(),
         updated_at = now()
       from fleet_upgrade_targets t
       where t.upgrade_id = $1 and t.state = 'upgrading' and o.id = t.operation_id
         and o.status = 'queued'
       returning o.id, t.account_id
     ), t as (
       update fleet_upgrade_targets t set state = 'pending', operation_id = null, started_at = null,
         reason = $2, updated_at = now()
       from c where t.upgrade_id = $1 and t.account_id = c.account_id
       returning t.account_id, t.environment_id, t.previous_dtma_setting, t.previous_backend_setting
     ), e as (
       update account_tool_environments e set dtma_image = t.previous_dtma_setting,
         backend_image = t.previous_backend_setting, updated_at = now()
       from t where e.id = t.environment_id
     ), ev as (
       insert into toolbox_operation_events (operation_id, type, message)
       select id, 'failed', $2 from c
     )
     select account_id::text from t`,
    [upgradeId, why],
  );
  return rows.map((r) => r.account_id);
}

export type ControlAction = "stop" | "resume" | "abort";
export type ControlOutcome =
  | { outcome: "done"; upgrade: FleetOperationRow }
  | { outcome: "not_found" }
  | { outcome: "conflict"; upgrade: FleetOperationRow; message: string };

/**
 * The operator's controls. Stop: nothing new starts and queued steps are withdrawn; running
 * steps finish and are verified, failed toolboxes still roll back. Resume: a stopped upgrade
 * goes on (a wave that stopped it on its failures does not stop it again). Abort: as stop, and
 * every toolbox not yet started is skipped; final once nothing is in flight.
 */
export async function controlUpgrade(
  pool: Pool,
  boss: PgBoss,
  id: string,
  action: ControlAction,
  who: string,
): Promise<ControlOutcome> {
  return transaction(pool, async (tx: PoolClient) => {
    const { rows } = await tx.query<FleetOperationRow>(
      "select * from fleet_operations where id = $1 and kind = 'upgrade' for update",
      [id],
    );
    const upgrade = rows[0];
    if (!upgrade) return { outcome: "not_found" };
    const finished = upgrade.finished_at !== null || upgrade.status === "aborted";
    const refuse = (message: string): ControlOutcome => ({
      outcome: "conflict",
      upgrade,
      message,
    });
    if (finished) return refuse(`the upgrade is ${upgrade.status}; it can no longer be changed`);
    if (action === "stop") {
      if (upgrade.status === "stopped") return { outcome: "done", upgrade };
      await withdrawQueuedSteps(tx, id, `withdrawn: the upgrade was stopped by ${who}`);
      const next = await setStatus(tx, id, "stopped", `stopped by ${who}`);
      await addFleetEvents(tx, id, [{ type: "stopped", message: `stopped by ${who}` }]);
      return { outcome: "done", upgrade: next };
    }
    if (action === "resume") {
      if (upgrade.status !== "stopped")
        return refuse(`the upgrade is ${upgrade.status}, not stopped`);
      // The wave that stopped it is acknowledged: its failures do not stop it again.
      const { rows: resumed } = await tx.query<FleetOperationRow>(
        `update fleet_operations set status = 'running', stop_reason = null, updated_at = now(),
           result_json = coalesce(result_json, '{}'::jsonb) - 'stopped_wave'
             || jsonb_build_object('acknowledged_wave', current_wave)
         where id = $1 returning *`,
        [id],
      );
      await addFleetEvents(tx, id, [{ type: "resumed", message: `resumed by ${who}` }]);
      await enqueueFleet(boss, tx, { operationId: id, kind: "upgrade" });
      return { outcome: "done", upgrade: resumed[0] };
    }
    await withdrawQueuedSteps(tx, id, `withdrawn: the upgrade was aborted by ${who}`);
    await tx.query(
      `update fleet_upgrade_targets set state = 'skipped', reason = $2, finished_at = now(),
         updated_at = now()
       where upgrade_id = $1 and state = 'pending'`,
      [id, `the upgrade was aborted by ${who}`],
    );
    const next = await setStatus(tx, id, "aborted", `aborted by ${who}`);
    await addFleetEvents(tx, id, [{ type: "aborted", message: `aborted by ${who}` }]);
    // The driver records the end once nothing it started is in flight.
    await enqueueFleet(boss, tx, { operationId: id, kind: "upgrade" });
    return { outcome: "done", upgrade: next };
  });
}

async function setStatus(
  db: Queryable,
  id: string,
  status: FleetStatus,
  reason: string | null,
): Promise<FleetOperationRow> {
  const { rows } = await db.query<FleetOperationRow>(
    `update fleet_operations set status = $2, stop_reason = $3, updated_at = now()
     where id = $1 returning *`,
    [id, status, reason],
  );
  return rows[0];
}
