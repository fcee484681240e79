/**
 * A tick's last step, wave by wave: a wave whose failures exceed the ratio stops the upgrade
 * (queued steps withdrawn); a running wave gives its pending toolboxes their step; a finished
 * wave opens the next, and the last ends the upgrade.
 */
import type { Pool, PoolClient } from "pg";
import { transaction } from "../db/transaction";
import type { DriverDeps } from "./driverDeps";
import { addFleetEvents, type FleetEvent } from "./events";
import { exceedsRatio } from "./plan";
import { IN_FLIGHT_SQL, TERMINAL_SQL, type FleetOperationRow } from "./records";
import { startPending } from "./stepDispatch";
import { withdrawQueuedSteps } from "./upgradeControls";
import type { UpgradePlan } from "./upgradeRequest";

interface WaveCounts {
  total: number;
  open: number;
  failed: number;
  skipped: number;
  in_flight: number;
}

async function waveCounts(db: Pool | PoolClient, id: string, wave: number): Promise<WaveCounts> {
  const { rows } = await db.query<WaveCounts>(
    `select count(*)::int as total,
       count(*) filter (where state not in (${TERMINAL_SQL}))::int as open,
       count(*) filter (where failure_reason is not null)::int as failed,
       count(*) filter (where state = 'skipped')::int as skipped,
       count(*) filter (where state in (${IN_FLIGHT_SQL}))::int as in_flight
     from fleet_upgrade_targets where upgrade_id = $1 and wave = $2`,
    [id, wave],
  );
  return rows[0];
}

/** Ratio, wave starts, wave ends, the end of the upgrade. */
export async function advance(
  deps: DriverDeps,
  op: FleetOperationRow,
  plan: UpgradePlan,
  events: FleetEvent[],
): Promise<"continue" | "idle" | "done"> {
  const acknowledged = (op.result_json?.acknowledged_wave as number | undefined) ?? -1;
  let wave = op.current_wave;
  for (;;) {
    const counts = await waveCounts(deps.pool, op.id, wave);
    const over =
      wave > acknowledged &&
      exceedsRatio(counts.failed, counts.total - counts.skipped, plan.max_failure_ratio);
    if (op.status === "running" && over) {
      await stopOnFailures(deps, op, wave, counts, plan, events);
      return "continue";
    }
    if (op.status !== "running") {
      const { rows } = await deps.pool.query<{ n: number }>(
        `select count(*)::int as n from fleet_upgrade_targets where upgrade_id = $1 and state in (${IN_FLIGHT_SQL})`,
        [op.id],
      );
      if (rows[0].n > 0) return "continue";
      if (op.status === "aborted") {
        await finish(deps, op, "aborted", events);
        return "done";
      }
      return "idle";
    }
    if (counts.open > 0) {
      await startPending(deps, op, plan, wave, counts.in_flight, events);
      return "continue";
    }
    if (counts.total > 0) {
      deps.metrics.waveFinished("completed");
      events.push({
        type: "wave_finished",
        message: `wave ${wave}: ${counts.total - counts.failed - counts.skipped} upgraded, ${counts.failed} failed, ${counts.skipped} skipped`,
        data: { wave, ...counts },
      });
    }
    const { rows } = await deps.pool.query<{ next: number | null }>(
      "select min(wave) as next from fleet_upgrade_targets where upgrade_id = $1 and wave > $2",
      [op.id, wave],
    );
    const next = rows[0].next;
    if (next === null) {
      await finish(deps, op, "succeeded", events);
      return "done";
    }
    const { rowCount } = await deps.pool.query(
      "update fleet_operations set current_wave = $2, updated_at = now() where id = $1 and status = 'running'",
      [op.id, next],
    );
    if (rowCount !== 1) return "continue";
    events.push({ type: "wave_started", message: `wave ${next}`, data: { wave: next } });
    wave = next;
    op.current_wave = next;
  }
}

async function stopOnFailures(
  deps: DriverDeps,
  op: FleetOperationRow,
  wave: number,
  counts: WaveCounts,
  plan: UpgradePlan,
  events: FleetEvent[],
) {
  const counted = counts.total - counts.skipped;
  const reason = `wave ${wave}: ${counts.failed} of ${counted} toolbox(es) failed (${((100 * counts.failed) / counted).toFixed(1)}% > ${(100 * plan.max_failure_ratio).toFixed(1)}%)`;
  await transaction(deps.pool, async (tx) => {
    const { rowCount } = await tx.query(
      `update fleet_operations set status = 'stopped', stop_reason = $2, updated_at = now(),
         result_json = coalesce(result_json, '{}'::jsonb) || jsonb_build_object('stopped_wave', $3::int)
       where id = $1 and status = 'running'`,
      [op.id, reason, wave],
    );
    if (rowCount !== 1) return;
    const withdrawn = await withdrawQueuedSteps(
      tx,
      op.id,
      `withdrawn: the upgrade stopped (${reason})`,
    );
    deps.metrics.waveFinished("stopped");
    events.push({
      type: "stopped",
      message: `${reason}; resume or abort it`,
      data: { wave, ...counts, withdrawn: withdrawn.length, rollback: plan.rollback },
    });
  });
}

/**
 * Ends the upgrade. The tick's events are written with the final status, in its transaction:
 * a stream ends once the upgrade is final, so nothing it should send may come after.
 */
async function finish(
  deps: DriverDeps,
  op: FleetOperationRow,
  status: "succeeded" | "aborted",
  events: FleetEvent[],
) {
  const finished = await transaction(deps.pool, async (tx) => {
    const { rowCount } = await tx.query(
      `update fleet_operations set status = $2, finished_at = now(), updated_at = now()
       where id = $1 and finished_at is null`,
      [op.id, status],
    );
    if (rowCount !== 1) return false;
    await addFleetEvents(tx, op.id, [
      ...events.splice(0),
      { type: "finished", message: `the upgrade ${status}`, data: { status } },
    ]);
    return true;
  });
  if (finished) deps.metrics.upgradeFinished(status);
}
