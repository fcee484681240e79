/**
 * Rollback: failed toolboxes (and, when the plan says so, the whole wave that stopped the
 * upgrade) go back to the images they had, with another `up`, verified like an upgrade.
 */
import { LOCAL_IMAGES } from "@agentopia-toolboxes/contract";
import { transaction } from "../db/transaction";
import type { DriverDeps } from "./driverDeps";
import type { FleetEvent } from "./events";
import type { FleetOperationRow, TargetState } from "./records";
import { queueSteps, type StepInput } from "./steps";
import type { UpgradePlan } from "./upgradeRequest";

/** What a target ran before the upgrade (its last `up`'s images) and what its record asked for. */
export interface PreviousImages {
  previous_dtma_image: string | null;
  previous_dtma_setting: string | null;
  previous_backend_image: string | null;
  previous_backend_setting: string | null;
}

/** The images a rollback goes back to, and that its verification expects. */
export function rollbackImages(deps: DriverDeps, r: PreviousImages) {
  const local = deps.defaults.target === "local";
  return {
    dtma:
      r.previous_dtma_image ??
      r.previous_dtma_setting ??
      deps.defaults.dtmaImage ??
      (local ? LOCAL_IMAGES.dtma : null),
    backend:
      r.previous_backend_image ??
      r.previous_backend_setting ??
      deps.defaults.backendImage ??
      (local ? LOCAL_IMAGES.backend : null),
  };
}

/**
 * Failed toolboxes go back to the images they had, with another `up`; when the plan asks for
 * it, so does every upgraded toolbox of the wave that stopped the upgrade. An account with an
 * operation of its own is rolled back once that ends.
 */
export async function startRollbacks(
  deps: DriverDeps,
  op: FleetOperationRow,
  plan: UpgradePlan,
  events: FleetEvent[],
) {
  const stoppedWave = (op.result_json?.stopped_wave as number | undefined) ?? null;
  const wholeWave = plan.rollback === "wave" && stoppedWave !== null ? stoppedWave : null;
  await transaction(deps.pool, async (tx) => {
    const { rows } = await tx.query<
      StepInput & PreviousImages & { state: TargetState; wave: number }
    >(
      `select t.account_id::text, t.environment_id, t.state, t.wave, t.previous_dtma_image,
         t.previous_dtma_setting, t.previous_backend_image, t.previous_backend_setting
       from fleet_upgrade_targets t join account_tool_environments e on e.id = t.environment_id
       where t.upgrade_id = $1
         and (t.state = 'failed' or (t.state = 'upgraded' and t.wave = $2::int))
         and not exists (select 1 from toolbox_operations o
           where o.account_id = t.account_id and o.status in ('queued', 'running'))
       for update of t, e skip locked`,
      [op.id, wholeWave],
    );
    if (rows.length === 0) return;
    const steps = rows.map((r) => {
      const images = rollbackImages(deps, r);
      return {
        account_id: r.account_id,
        environment_id: r.environment_id,
        // Back to exactly what ran; a record that never had images of its own gets none again.
        dtma_image: r.previous_dtma_image ?? r.previous_dtma_setting,
        backend_image: r.previous_backend_image ?? r.previous_backend_setting,
        expected: images,
      };
    });
    const ops = await queueSteps(tx, deps.boss, "rollback", steps, `upgrade:${op.id}`);
    await tx.query(
      `update fleet_upgrade_targets t set state = 'rolling_back', rollback_operation_id = s.op,
         started_at = now(), deadline_at = null,
         reason = case when t.state = 'upgraded' then 'the whole wave goes back: the upgrade stopped on its failures'
           else t.reason end,
         updated_at = now()
       from jsonb_to_recordset($2::jsonb) as s(account_id uuid, op uuid)
       where t.upgrade_id = $1 and t.account_id = s.account_id`,
      [op.id, JSON.stringify([...ops].map(([account_id, id]) => ({ account_id, op: id })))],
    );
    for (const r of rows) {
      events.push({
        type: "toolbox_rollback_queued",
        message: `${r.account_id}: back to ${r.previous_dtma_image ?? r.previous_dtma_setting ?? "the service's images"}`,
        data: {
          account_id: r.account_id,
          wave: r.wave,
          operation_id: ops.get(r.account_id),
          whole_wave: r.state === "upgraded",
        },
      });
    }
  });
}
