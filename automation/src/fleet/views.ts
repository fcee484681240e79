/** What the fleet routes answer: fleet operations, an upgrade with its counts, its targets. */
import type { Queryable } from "../db/rows";
import { TARGET_STATES, type FleetOperationRow, type TargetRow, type TargetState } from "./records";

export interface UpgradeCounts {
  total: number;
  by_state: Record<TargetState, number>;
  waves: { wave: number; total: number; by_state: Partial<Record<TargetState, number>> }[];
}

/** Counts of an upgrade's toolboxes by state, overall and per wave. */
async function upgradeCounts(db: Queryable, id: string): Promise<UpgradeCounts> {
  const { rows } = await db.query<{ wave: number; state: TargetState; n: number }>(
    `select wave, state, count(*)::int as n from fleet_upgrade_targets where upgrade_id = $1
     group by wave, state order by wave, state`,
    [id],
  );
  const byState = Object.fromEntries(TARGET_STATES.map((s) => [s, 0])) as Record<
    TargetState,
    number
  >;
  const waves = new Map<number, UpgradeCounts["waves"][number]>();
  let total = 0;
  for (const r of rows) {
    byState[r.state] += r.n;
    total += r.n;
    const w = waves.get(r.wave) ?? { wave: r.wave, total: 0, by_state: {} };
    w.total += r.n;
    w.by_state[r.state] = r.n;
    waves.set(r.wave, w);
  }
  return { total, by_state: byState, waves: [...waves.values()] };
}

export function fleetOperationView(op: FleetOperationRow) {
  const base = op.kind === "upgrade" ? "/v1/upgrades" : "/v1/reconciliations";
  return {
    id: op.id,
    kind: op.kind,
    environment: op.environment,
    status: op.status,
    finished: op.finished_at !== null,
    request: op.request_json,
    result: op.result_json,
    error_message: op.error_message,
    requested_by: op.requested_by,
    attempts: op.attempts,
    created_at: op.created_at,
    started_at: op.started_at,
    finished_at: op.finished_at,
    events_url: `${base}/${op.id}/events`,
  };
}

export async function upgradeView(db: Queryable, op: FleetOperationRow) {
  return {
    ...fleetOperationView(op),
    current_wave: op.current_wave,
    stop_reason: op.stop_reason,
    counts: await upgradeCounts(db, op.id),
    toolboxes_url: `/v1/upgrades/${op.id}/toolboxes`,
  };
}

export function targetView(t: TargetRow) {
  return {
    account_id: t.account_id,
    wave: t.wave,
    state: t.state,
    reason: t.reason,
    failure_reason: t.failure_reason,
    previous_dtma_image: t.previous_dtma_image,
    previous_backend_image: t.previous_backend_image,
    operation_id: t.operation_id,
    rollback_operation_id: t.rollback_operation_id,
    started_at: t.started_at,
    deadline_at: t.deadline_at,
    finished_at: t.finished_at,
  };
}
