/**
 * Fleet upgrades: the request, its durable plan (one target row per toolbox, with its wave and
 * the images it had), the operator's controls (stop, resume, abort) and the views. The driver
 * (upgradeDriver.ts) moves the targets; every toolbox's step is an `upgrade` operation of its
 * account, through the same queue and engine seam as the account's own operations.
 */
import {
  DIGEST_PIN_RULE,
  DIGEST_PINNED,
  IMAGE_REFERENCE,
  IMAGE_REFERENCE_RULE,
} from "@agentopia-toolboxes/contract";
import type { Pool, PoolClient } from "pg";
import type { PgBoss } from "pg-boss";
import { z } from "zod";
import type { Queryable } from "../db/rows";
import { uuid } from "../routes/validation";
import { transaction } from "../queue/worker";
import { addFleetEvents } from "./events";
import { assignWaves } from "./plan";
import { enqueueFleet } from "./queue";

/** What the upgrade needs of the service's settings. */
export interface UpgradeSettings {
  environment: string;
  requireDigestPins: boolean;
}

const image = (pins: boolean) =>
  z
    .string()
    .regex(IMAGE_REFERENCE, IMAGE_REFERENCE_RULE)
    .refine(
      (v) => !pins || DIGEST_PINNED.test(v),
      `${DIGEST_PIN_RULE} (this environment requires pins)`,
    );

/** The body of `POST /v1/upgrades`; every field is checked and named when wrong. */
export function upgradeRequest(settings: UpgradeSettings) {
  return z
    .object({
      dtma_image: image(settings.requireDigestPins),
      backend_image: image(settings.requireDigestPins),
      canary_accounts: z.array(uuid).min(1).max(1000).optional(),
      canary_count: z.number().int().min(0).max(100_000).optional(),
      waves: z
        .array(z.number().min(0.001).max(100))
        .min(1)
        .max(20)
        .refine(
          (w) => w.every((p, i) => i === 0 || p > w[i - 1]),
          "must be strictly increasing cumulative percentages",
        )
        .refine((w) => w[w.length - 1] === 100, "must end with 100 (every toolbox)")
        .default([1, 10, 50, 100]),
      max_failure_ratio: z.number().min(0).max(1).default(0.1),
      health_deadline_seconds: z.number().int().min(5).max(86_400).default(600),
      rollback: z.enum(["failed", "wave"]).default("failed"),
      on_busy: z.enum(["wait", "skip"]).default("wait"),
      busy_wait_seconds: z.number().int().min(0).max(86_400).default(900),
      concurrency: z.number().int().min(1).max(10_000).optional(),
    })
    .strict()
    .superRefine((v, ctx) => {
      if (v.canary_accounts !== undefined && v.canary_count !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["canary_count"],
          message: "give canary_accounts or canary_count, not both",
        });
      }
      if (v.canary_accounts && new Set(v.canary_accounts).size !== v.canary_accounts.length) {
        ctx.addIssue({ code: "custom", path: ["canary_accounts"], message: "has duplicates" });
      }
    });
}

export type UpgradePlan = z.infer<ReturnType<typeof upgradeRequest>>;

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
export const IN_FLIGHT: readonly TargetState[] = [
  "upgrading",
  "verifying",
  "failed",
  "rolling_back",
  "verifying_rollback",
];

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

export type CreateOutcome =
  | { outcome: "created"; upgrade: FleetOperationRow }
  | { outcome: "conflict"; upgrade: FleetOperationRow }
  | { outcome: "invalid"; field: string; message: string };

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

async function openUpgrade(db: Queryable, environment: string) {
  const { rows } = await db.query<FleetOperationRow>(
    "select * from fleet_operations where kind = 'upgrade' and environment = $1 and finished_at is null",
    [environment],
  );
  return rows[0];
}

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
    // Serializes concurrent requests of this environment (the unique index is the arbiter).
    await tx.query("select pg_advisory_xact_lock(hashtextextended($1, 11))", [
      `upgrade:${settings.environment}`,
    ]);
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
    const open = await openUpgrade(tx, settings.environment);
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

export interface UpgradeCounts {
  total: number;
  by_state: Record<TargetState, number>;
  waves: { wave: number; total: number; by_state: Partial<Record<TargetState, number>> }[];
}

/** Counts of an upgrade's toolboxes by state, overall and per wave. */
export async function upgradeCounts(db: Queryable, id: string): Promise<UpgradeCounts> {
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
