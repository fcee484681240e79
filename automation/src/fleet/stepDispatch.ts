/**
 * Step dispatch: pending toolboxes of the current wave get their `upgrade` step, within the
 * plan's concurrency; an account with an operation of its own is waited for or skipped, a
 * toolbox that is not active (or already runs the target images) is skipped.
 */
import { transaction } from "../db/transaction";
import type { DriverDeps } from "./driverDeps";
import type { FleetEvent } from "./events";
import type { FleetOperationRow } from "./records";
import { queueSteps, type StepInput } from "./steps";
import type { UpgradePlan } from "./upgradeRequest";

/** Gives pending toolboxes of the wave their step, within the plan's concurrency. */
export async function startPending(
  deps: DriverDeps,
  op: FleetOperationRow,
  plan: UpgradePlan,
  wave: number,
  inFlight: number,
  events: FleetEvent[],
) {
  const room = plan.concurrency === undefined ? 100_000 : plan.concurrency - inFlight;
  if (room <= 0) return;
  await transaction(deps.pool, async (tx) => {
    const { rows } = await tx.query<{
      account_id: string;
      environment_id: string;
      status: string;
      waiting_since: Date | null;
      busy_kind: string | null;
      waited_seconds: number | null;
      current: boolean;
    }>(
      `select t.account_id::text, t.environment_id, e.status::text, t.waiting_since,
         (e.deployed_dtma_image = $4 and e.deployed_backend_image = $5) as current,
         extract(epoch from now() - t.waiting_since)::float8 as waited_seconds,
         (select o.kind from toolbox_operations o where o.account_id = t.account_id
            and o.status in ('queued', 'running') limit 1) as busy_kind
       from fleet_upgrade_targets t join account_tool_environments e on e.id = t.environment_id
       where t.upgrade_id = $1 and t.wave = $2 and t.state = 'pending'
       order by t.account_id limit $3
       for update of t, e skip locked`,
      [op.id, wave, room, plan.dtma_image, plan.backend_image],
    );
    const start: StepInput[] = [];
    const skip: { account_id: string; reason: string }[] = [];
    const wait: { account_id: string; reason: string }[] = [];
    for (const r of rows) {
      if (r.busy_kind !== null) {
        const reason = `its ${r.busy_kind} operation is in progress`;
        if (plan.on_busy === "skip") skip.push({ account_id: r.account_id, reason });
        else if (r.waited_seconds !== null && r.waited_seconds > plan.busy_wait_seconds)
          skip.push({
            account_id: r.account_id,
            reason: `${reason} after ${plan.busy_wait_seconds} s of waiting`,
          });
        else if (r.waiting_since === null)
          wait.push({ account_id: r.account_id, reason: `waiting: ${reason}` });
      } else if (r.current) {
        skip.push({ account_id: r.account_id, reason: "it already runs the target images" });
      } else if (r.status !== "active") {
        skip.push({ account_id: r.account_id, reason: `the toolbox is ${r.status}, not active` });
      } else {
        start.push({
          account_id: r.account_id,
          environment_id: r.environment_id,
          dtma_image: plan.dtma_image,
          backend_image: plan.backend_image,
        });
      }
    }
    const ops = await queueSteps(tx, deps.boss, "upgrade", start, `upgrade:${op.id}`);
    const updates = [
      ...[...ops].map(([account_id, opId]) => ({
        account_id,
        state: "upgrading",
        op: opId,
        reason: null,
        wait: false,
      })),
      ...skip.map((s) => ({
        account_id: s.account_id,
        state: "skipped",
        op: null,
        reason: s.reason,
        wait: false,
      })),
      ...wait.map((s) => ({
        account_id: s.account_id,
        state: "pending",
        op: null,
        reason: s.reason,
        wait: true,
      })),
    ];
    if (updates.length === 0) return;
    await tx.query(
      `update fleet_upgrade_targets t set state = s.state, operation_id = coalesce(s.op, t.operation_id),
         reason = s.reason,
         started_at = case when s.state = 'upgrading' then now() else t.started_at end,
         waiting_since = case when s.wait then now() else t.waiting_since end,
         finished_at = case when s.state = 'skipped' then now() end, updated_at = now()
       from jsonb_to_recordset($2::jsonb) as s(account_id uuid, state text, op uuid, reason text, wait boolean)
       where t.upgrade_id = $1 and t.account_id = s.account_id`,
      [op.id, JSON.stringify(updates)],
    );
    for (const [account_id, operation_id] of ops) {
      events.push({
        type: "toolbox_queued",
        message: `${account_id}: upgrade queued`,
        data: { account_id, wave, operation_id },
      });
    }
    for (const s of skip) {
      deps.metrics.toolboxFinished("skipped");
      events.push({
        type: "toolbox_skipped",
        message: `${s.account_id}: ${s.reason}`,
        data: { account_id: s.account_id, wave, reason: s.reason },
      });
    }
    for (const s of wait) {
      events.push({
        type: "toolbox_waiting",
        message: `${s.account_id}: ${s.reason}`,
        data: { account_id: s.account_id, wave, reason: s.reason },
      });
    }
  });
}
