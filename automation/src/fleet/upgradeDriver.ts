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
 * upgraded twice, whatever dies when.
 */
import { LOCAL_IMAGES } from "@agentopia-toolboxes/contract";
import type { Logger } from "pino";
import type { Pool, PoolClient } from "pg";
import type { PgBoss } from "pg-boss";
import type { TokenCipher } from "../secrets/tokenCipher";
import { transaction } from "../queue/worker";
import { addFleetEvents, type FleetEvent } from "./events";
import { backendProblem, heartbeatProblem, type BackendProbe, type BackendStatus } from "./health";
import type { FleetMetrics } from "./metrics";
import { exceedsRatio } from "./plan";
import { queueSteps, type StepInput } from "./steps";
import {
  getFleetOperation,
  IN_FLIGHT,
  TERMINAL,
  withdrawQueuedSteps,
  type FleetOperationRow,
  type TargetState,
  type UpgradePlan,
} from "./upgrades";

export interface DriverDeps {
  pool: Pool;
  boss: PgBoss;
  cipher: TokenCipher;
  log: Logger;
  metrics: FleetMetrics;
  probe: BackendProbe;
  workerId: string;
  /** Time between ticks (ms). */
  pollMs: number;
  /** What the service's settings deploy, for a rollback to a record that had no images of its own. */
  defaults: { target: "local" | "digitalocean"; dtmaImage?: string; backendImage?: string };
  /** True once the worker is stopping: the driver hands the upgrade back to the queue. */
  stopping: () => boolean;
}

const IN_FLIGHT_SQL = IN_FLIGHT.map((s) => `'${s}'`).join(", ");
const TERMINAL_SQL = TERMINAL.map((s) => `'${s}'`).join(", ");
/** A backend is asked at most this often per toolbox. */
const PROBE_EVERY_MS = 1000;
const PROBES_AT_ONCE = 16;

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

interface VerifyRow {
  account_id: string;
  environment_id: string;
  state: "verifying" | "verifying_rollback";
  wave: number;
  started_at: Date;
  deadline_at: Date;
  previous_dtma_image: string | null;
  previous_dtma_setting: string | null;
  previous_backend_image: string | null;
  previous_backend_setting: string | null;
  toolbox_status: string;
  last_heartbeat_at: Date | null;
  has_image_field: boolean;
  reported_image: string | null;
  backend_url: string | null;
  tokens_ciphertext: string | null;
  backend_ca: string | null;
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

/** Steps whose operation ended: verify what succeeded, count what failed. */
async function syncSteps(
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

const LEFT = new Set([
  "pending_deprovision",
  "deprovisioning",
  "deprovisioned",
  "error_deprovisioning",
]);

/** Health of the toolboxes whose step is done: proven, still awaited, or failed at the deadline. */
async function verify(
  deps: DriverDeps,
  op: FleetOperationRow,
  plan: UpgradePlan,
  probes: Map<string, number>,
  events: FleetEvent[],
) {
  const { rows } = await deps.pool.query<VerifyRow>(
    `select t.account_id::text, t.environment_id, t.state, t.wave, t.started_at, t.deadline_at,
       t.previous_dtma_image, t.previous_dtma_setting, t.previous_backend_image,
       t.previous_backend_setting, e.status::text as toolbox_status, e.last_heartbeat_at,
       coalesce(e.dtma_health_details_json ? 'dtma_image', false) as has_image_field,
       e.dtma_health_details_json->>'dtma_image' as reported_image, e.backend_url,
       c.tokens_ciphertext, e.outputs_json->>'backendCaCertPem' as backend_ca
     from fleet_upgrade_targets t join account_tool_environments e on e.id = t.environment_id
       left join account_tool_environment_credentials c on c.environment_id = e.id
     where t.upgrade_id = $1 and t.state in ('verifying', 'verifying_rollback')`,
    [op.id],
  );
  const now = Date.now();
  const queue = [...rows];
  const work = async () => {
    for (let r = queue.shift(); r; r = queue.shift()) {
      const verdict = await judge(deps, plan, r, probes, now);
      if (verdict) await settle(deps, op, r, verdict, events);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PROBES_AT_ONCE, rows.length) }, work));
}

type Verdict =
  { outcome: "healthy"; backend: BackendStatus } | { outcome: "left" | "late"; reason: string };

async function judge(
  deps: DriverDeps,
  plan: UpgradePlan,
  r: VerifyRow,
  probes: Map<string, number>,
  now: number,
): Promise<Verdict | undefined> {
  if (LEFT.has(r.toolbox_status)) {
    return { outcome: "left", reason: `the toolbox is ${r.toolbox_status}: it left the upgrade` };
  }
  const rollback = r.state === "verifying_rollback";
  const expected = rollback
    ? rollbackImages(deps, r)
    : { dtma: plan.dtma_image, backend: plan.backend_image };
  const late = now > r.deadline_at.getTime();
  const hb = heartbeatProblem(
    {
      last_heartbeat_at: r.last_heartbeat_at,
      reported_image: r.reported_image,
      has_image_field: r.has_image_field,
    },
    expected.dtma,
    r.started_at,
    rollback,
  );
  if (hb) return late ? { outcome: "late", reason: `${hb} before the deadline` } : undefined;
  const key = `${r.account_id}:${r.state}`;
  if (!late && now - (probes.get(key) ?? 0) < PROBE_EVERY_MS) return undefined;
  probes.set(key, now);
  let token: string | undefined;
  try {
    token = r.tokens_ciphertext
      ? deps.cipher.decrypt(r.tokens_ciphertext, r.account_id).backendApiToken
      : undefined;
  } catch {
    token = undefined;
  }
  const status: BackendStatus =
    !r.backend_url || !token
      ? { ok: false, problem: "no backend URL or token is recorded for this toolbox" }
      : await deps.probe(r.backend_url, token, r.backend_ca ?? undefined);
  const problem = backendProblem(status, expected.backend);
  if (!problem) {
    probes.delete(key);
    return { outcome: "healthy", backend: status };
  }
  return late ? { outcome: "late", reason: `${problem} (at the deadline)` } : undefined;
}

function rollbackImages(
  deps: DriverDeps,
  r: Pick<
    VerifyRow,
    | "previous_dtma_image"
    | "previous_dtma_setting"
    | "previous_backend_image"
    | "previous_backend_setting"
  >,
) {
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

async function settle(
  deps: DriverDeps,
  op: FleetOperationRow,
  r: VerifyRow,
  v: Verdict,
  events: FleetEvent[],
) {
  const rollback = r.state === "verifying_rollback";
  const [state, column, type]: [TargetState, "reason" | "failure_reason", string] =
    v.outcome === "healthy"
      ? [
          rollback ? "rolled_back" : "upgraded",
          "reason",
          rollback ? "toolbox_rolled_back" : "toolbox_upgraded",
        ]
      : v.outcome === "left"
        ? ["skipped", "reason", "toolbox_skipped"]
        : rollback
          ? ["rollback_failed", "reason", "toolbox_rollback_failed"]
          : ["failed", "failure_reason", "toolbox_failed"];
  const reason =
    v.outcome === "healthy"
      ? `healthy: heartbeat and backend${v.backend.version ? ` ${v.backend.version}` : ""} confirmed`
      : v.reason;
  const { rowCount } = await deps.pool.query(
    `update fleet_upgrade_targets set state = $3, ${column} = $4,
       finished_at = case when $3 in (${TERMINAL_SQL}) then now() end, updated_at = now()
     where upgrade_id = $1 and account_id = $2 and state = $5`,
    [op.id, r.account_id, state, reason, r.state],
  );
  if (rowCount !== 1) return;
  if ((TERMINAL as readonly string[]).includes(state)) deps.metrics.toolboxFinished(state);
  events.push({
    type,
    message: `${r.account_id}: ${reason}`,
    data: {
      account_id: r.account_id,
      wave: r.wave,
      reason,
      ...(v.outcome === "healthy"
        ? { backend_version: v.backend.version ?? null, backend_image: v.backend.image ?? null }
        : {}),
    },
  });
}

/**
 * Failed toolboxes go back to the images they had, with another `up`; when the plan asks for
 * it, so does every upgraded toolbox of the wave that stopped the upgrade. An account with an
 * operation of its own is rolled back once that ends.
 */
async function startRollbacks(
  deps: DriverDeps,
  op: FleetOperationRow,
  plan: UpgradePlan,
  events: FleetEvent[],
) {
  const stoppedWave = (op.result_json?.stopped_wave as number | undefined) ?? null;
  const wholeWave = plan.rollback === "wave" && stoppedWave !== null ? stoppedWave : null;
  await transaction(deps.pool, async (tx) => {
    const { rows } = await tx.query<
      StepInput &
        Pick<
          VerifyRow,
          | "previous_dtma_image"
          | "previous_dtma_setting"
          | "previous_backend_image"
          | "previous_backend_setting"
        > & { state: TargetState; wave: number }
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
async function advance(
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
      await startPending(deps, op, plan, wave, counts, events);
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

/** Gives pending toolboxes of the wave their step, within the plan's concurrency. */
async function startPending(
  deps: DriverDeps,
  op: FleetOperationRow,
  plan: UpgradePlan,
  wave: number,
  counts: WaveCounts,
  events: FleetEvent[],
) {
  const room = plan.concurrency === undefined ? 100_000 : plan.concurrency - counts.in_flight;
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

async function finish(
  deps: DriverDeps,
  op: FleetOperationRow,
  status: "succeeded" | "aborted",
  events: FleetEvent[],
) {
  const { rowCount } = await deps.pool.query(
    `update fleet_operations set status = $2, finished_at = now(), updated_at = now()
     where id = $1 and finished_at is null`,
    [op.id, status],
  );
  if (rowCount !== 1) return;
  deps.metrics.upgradeFinished(status);
  events.push({ type: "finished", message: `the upgrade ${status}`, data: { status } });
}
