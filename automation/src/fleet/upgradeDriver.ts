/**
 * The driver of one fleet upgrade: a job on the fleet queue that holds the upgrade's advisory
 * lock and moves its targets, one tick at a time, from what Postgres records (so a driver that
 * dies is resumed by pg-boss on another worker, where it was). Each tick:
 *   1. finished steps: an `upgrade` that succeeded is verified, one that failed is a failure;
 *      a `rollback` likewise;
 *   2. health: a heartbeat since the step started reporting the expected DTMA image, then the
 *      backend's /status, before the deadline; else a failure with its reason;
 *   3. failures roll back (and, when the plan says so, the whole wave that stopped the upgrade);
 *   4. a wave whose failures exceed the ratio stops the upgrade (queued steps withdrawn);
 *   5. while running, pending toolboxes of the current wave get their step (an account with an
 *      operation of its own is waited for or skipped, a toolbox that is not active is skipped);
 *   6. a finished wave opens the next, and the last ends the upgrade.
 * A target's state changes in the same transaction as the operation it starts, so nobody is
 * upgraded twice, whatever dies when. Steps 1 to 6 are finishedSteps.ts, healthGate.ts,
 * rollback.ts and waves.ts (with stepDispatch.ts).
 */
import type { PoolClient } from "pg";
import type { DriverDeps } from "./driverDeps";
import { addFleetEvents, type FleetEvent } from "./events";
import { syncSteps } from "./finishedSteps";
import { verify } from "./healthGate";
import { getFleetOperation, type FleetOperationRow } from "./records";
import { startRollbacks } from "./rollback";
import type { UpgradePlan } from "./upgradeRequest";
import { advance } from "./waves";

/** Runs the upgrade until it ends, or is stopped with nothing in flight. */
export async function driveUpgrade(deps: DriverDeps, upgradeId: string): Promise<void> {
  const db = await deps.pool.connect();
  const lost = (err: Error) =>
    deps.log.warn({ upgradeId, err: err.message }, "driver connection lost");
  db.on("error", lost);
  let locked = false;
  try {
    locked = await lockUpgrade(db, upgradeId);
    if (!locked) throw new Error(`upgrade ${upgradeId} is driven by another worker`);
    const claimed = await claim(db, upgradeId, deps.workerId);
    if (!claimed) return;
    const probes = new Map<string, number>();
    for (;;) {
      if (deps.stopping()) throw new Error("the worker is stopping; the upgrade is handed back");
      const state = await tick(deps, upgradeId, probes);
      if (state !== "continue") return;
      await new Promise((r) => setTimeout(r, deps.pollMs));
    }
  } finally {
    if (locked) {
      await db
        .query("select pg_advisory_unlock(hashtextextended($1, 12))", [upgradeId])
        .catch(() => undefined);
    }
    db.off("error", lost);
    db.release();
  }
}

async function lockUpgrade(db: PoolClient, id: string): Promise<boolean> {
  await db.query("set lock_timeout = '5s'");
  try {
    await db.query("select pg_advisory_lock(hashtextextended($1, 12))", [id]);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "55P03") return false;
    throw err;
  } finally {
    await db.query("reset lock_timeout");
  }
}

/** Marks the upgrade taken by this worker; says so when it resumes after a lost driver. */
async function claim(db: PoolClient, id: string, workerId: string): Promise<boolean> {
  const { rows } = await db.query<
    FleetOperationRow & { before: string; first_wave: number | null }
  >(
    `with prev as (select status, attempts from fleet_operations where id = $1 for update)
     update fleet_operations f set attempts = f.attempts + 1, worker_id = $2,
       started_at = coalesce(f.started_at, now()),
       status = case when f.status = 'queued' then 'running' else f.status end,
       current_wave = case when f.status = 'queued'
         then coalesce((select min(wave) from fleet_upgrade_targets where upgrade_id = $1), 0)
         else f.current_wave end,
       updated_at = now()
     from prev where f.id = $1 and f.finished_at is null
     returning f.*, prev.status as before, prev.attempts as first_wave`,
    [id, workerId],
  );
  const op = rows[0];
  if (!op) return false;
  const events: FleetEvent[] =
    op.before === "queued"
      ? [
          { type: "started", message: `driven by ${workerId}` },
          {
            type: "wave_started",
            message: `wave ${op.current_wave}`,
            data: { wave: op.current_wave },
          },
        ]
      : op.attempts > 1
        ? [
            {
              type: "driver_resumed",
              message: `attempt ${op.attempts} on ${workerId}: resuming where it was`,
            },
          ]
        : [];
  await addFleetEvents(db, id, events);
  return true;
}

/** One pass over the upgrade; "continue" while there is anything to do or watch. */
async function tick(
  deps: DriverDeps,
  id: string,
  probes: Map<string, number>,
): Promise<"continue" | "idle" | "done"> {
  const op = await getFleetOperation(deps.pool, id, "upgrade");
  if (!op || op.finished_at) return "done";
  const plan = op.request_json as unknown as UpgradePlan;
  const events: FleetEvent[] = [];
  await syncSteps(deps, op, plan, events);
  await verify(deps, op, plan, probes, events);
  await startRollbacks(deps, op, plan, events);
  const result = await advance(deps, op, plan, events);
  await addFleetEvents(deps.pool, id, events);
  return result;
}
