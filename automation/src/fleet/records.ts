/**
 * The records of fleet operations (an upgrade or a reconciliation run: `fleet_operations`) and
 * of an upgrade's targets (one `fleet_upgrade_targets` row per toolbox), with the states a
 * target goes through.
 */
import type { Queryable } from "../db/rows";

export type TargetState =
  | "pending"
  | "upgrading"
  | "verifying"
  | "upgraded"
  | "failed"
  | "skipped"
  | "rolling_back"
  | "verifying_rollback"
  | "rolled_back"
  | "rollback_failed";

export const TARGET_STATES: readonly TargetState[] = [
  "pending",
  "upgrading",
  "verifying",
  "upgraded",
  "failed",
  "skipped",
  "rolling_back",
  "verifying_rollback",
  "rolled_back",
  "rollback_failed",
];
/** States a target never leaves. */
export const TERMINAL: readonly TargetState[] = [
  "upgraded",
  "skipped",
  "rolled_back",
  "rollback_failed",
];
/** States in which something is happening to the toolbox (the driver keeps watching). */
const IN_FLIGHT: readonly TargetState[] = [
  "upgrading",
  "verifying",
  "failed",
  "rolling_back",
  "verifying_rollback",
];

/** The state lists as SQL literals, for `state in (...)`. */
export const IN_FLIGHT_SQL = IN_FLIGHT.map((s) => `'${s}'`).join(", ");
export const TERMINAL_SQL = TERMINAL.map((s) => `'${s}'`).join(", ");

export type FleetStatus = "queued" | "running" | "stopped" | "aborted" | "succeeded" | "failed";

export interface FleetOperationRow {
  id: string;
  kind: "upgrade" | "reconcile";
  environment: string;
  status: FleetStatus;
  request_json: Record<string, unknown>;
  result_json: Record<string, unknown> | null;
  current_wave: number;
  stop_reason: string | null;
  error_message: string | null;
  requested_by: string;
  worker_id: string | null;
  attempts: number;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

export interface TargetRow {
  upgrade_id: string;
  environment_id: string;
  account_id: string;
  wave: number;
  state: TargetState;
  previous_dtma_setting: string | null;
  previous_backend_setting: string | null;
  previous_dtma_image: string | null;
  previous_backend_image: string | null;
  operation_id: string | null;
  rollback_operation_id: string | null;
  deadline_at: Date | null;
  step_finished_at: Date | null;
  reason: string | null;
  failure_reason: string | null;
  waiting_since: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

export async function getFleetOperation(
  db: Queryable,
  id: string,
  kind?: FleetOperationRow["kind"],
): Promise<FleetOperationRow | undefined> {
  const { rows } = await db.query<FleetOperationRow>(
    "select * from fleet_operations where id = $1 and ($2::text is null or kind = $2)",
    [id, kind ?? null],
  );
  return rows[0];
}

/**
 * Serializes the requests for fleet operations of this kind in the environment until the
 * caller's transaction ends (the unique index of unfinished ones is the arbiter).
 */
export async function lockFleetRequests(
  tx: Queryable,
  kind: FleetOperationRow["kind"],
  environment: string,
): Promise<void> {
  await tx.query("select pg_advisory_xact_lock(hashtextextended($1, 11))", [
    `${kind}:${environment}`,
  ]);
}

/** The unfinished fleet operation of this kind in the environment (one at most). */
export async function openFleetOperation(
  db: Queryable,
  kind: FleetOperationRow["kind"],
  environment: string,
): Promise<FleetOperationRow | undefined> {
  const { rows } = await db.query<FleetOperationRow>(
    "select * from fleet_operations where kind = $1 and environment = $2 and finished_at is null",
    [kind, environment],
  );
  return rows[0];
}
