/**
 * A tick's first step: targets whose operation ended. An `upgrade` that succeeded is verified
 * next (healthGate.ts), one that failed is a failure; a `rollback` likewise.
 */
import type { DriverDeps } from "./driverDeps";
import type { FleetEvent } from "./events";
import type { FleetOperationRow, TargetState } from "./records";
import type { UpgradePlan } from "./upgradeRequest";

/** Steps whose operation ended: verify what succeeded, count what failed. */
export async function syncSteps(
  deps: DriverDeps,
  op: FleetOperationRow,
  plan: UpgradePlan,
  events: FleetEvent[],
) {
  const { rows } = await deps.pool.query<{
    account_id: string;
    state: TargetState;
    wave: number;
    failure_reason: string | null;
    reason: string | null;
  }>(
    `with done as (
       select t.account_id, t.state as before, o.status, o.error_message, o.finished_at
       from fleet_upgrade_targets t
       join toolbox_operations o on o.id = case t.state when 'upgrading' then t.operation_id
         else t.rollback_operation_id end
       where t.upgrade_id = $1 and t.state in ('upgrading', 'rolling_back')
         and o.status in ('succeeded', 'failed')
     )
     update fleet_upgrade_targets t set
       state = case
         when done.before = 'upgrading' and done.status = 'succeeded' then 'verifying'
         when done.before = 'upgrading' then 'failed'
         when done.status = 'succeeded' then 'verifying_rollback'
         else 'rollback_failed' end,
       step_finished_at = done.finished_at,
       deadline_at = case when done.status = 'succeeded'
         then now() + make_interval(secs => $2) end,
       failure_reason = case when done.before = 'upgrading' and done.status = 'failed'
         then 'the upgrade step failed: ' || coalesce(done.error_message, 'no reason given')
         else t.failure_reason end,
       reason = case when done.before = 'rolling_back' and done.status = 'failed'
         then 'the rollback step failed: ' || coalesce(done.error_message, 'no reason given')
         else t.reason end,
       finished_at = case when done.before = 'rolling_back' and done.status = 'failed'
         then now() end,
       updated_at = now()
     from done where t.upgrade_id = $1 and t.account_id = done.account_id
     returning t.account_id::text, t.state, t.wave, t.failure_reason, t.reason`,
    [op.id, plan.health_deadline_seconds],
  );
  for (const r of rows) {
    if (r.state === "failed") {
      events.push({
        type: "toolbox_failed",
        message: `${r.account_id}: ${r.failure_reason}`,
        data: { account_id: r.account_id, wave: r.wave, reason: r.failure_reason },
      });
    } else if (r.state === "rollback_failed") {
      deps.metrics.toolboxFinished("rollback_failed");
      events.push({
        type: "toolbox_rollback_failed",
        message: `${r.account_id}: ${r.reason}`,
        data: { account_id: r.account_id, wave: r.wave, reason: r.reason },
      });
    } else {
      events.push({
        type: r.state === "verifying" ? "toolbox_verifying" : "toolbox_verifying_rollback",
        message: `${r.account_id}: step done; waiting for its health`,
        data: { account_id: r.account_id, wave: r.wave },
      });
    }
  }
}
