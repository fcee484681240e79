/**
 * Orphan reconciliation: three views compared, every mismatch reported once with its kind.
 *   record_without_stack  a live record of the service whose `acct-*` stack does not exist (one
 *                         already error_provisioning is not reported again)
 *   stack_without_record  an `acct-*` stack without a live record (nor an operation creating one)
 *   untracked_droplet     a droplet tagged `agentopia-toolbox` whose account has no stack (and is
 *                         no canary an operator stack declares)
 *   stale_heartbeat       a toolbox that has a stack but no heartbeat for longer than the threshold
 * A dry run (the default) changes nothing. Acting is per kind and explicit (reconcileActions.ts).
 * The views and the findings are mismatches.ts's; this module records a run, queues it and runs
 * it.
 */
import type { Logger } from "pino";
import type { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import { transaction } from "../db/transaction";
import { addFleetEvents, type FleetEvent } from "./events";
import type { FleetMetrics } from "./metrics";
import { findMismatches } from "./mismatches";
import { enqueueFleet } from "./queue";
import { act, type ActionDeps } from "./reconcileActions";
import { lockFleetRequests, openFleetOperation, type FleetOperationRow } from "./records";
import { FINDING_KINDS, reconcileRequest, type ReconcileRequest } from "./reconcileRequest";

export interface ReconcileDeps extends ActionDeps {
  boss: PgBoss;
  log: Logger;
  metrics: FleetMetrics;
  heartbeatThresholdSeconds: number;
  workerId: string;
}

export type StartOutcome =
  { outcome: "created"; run: FleetOperationRow } | { outcome: "conflict"; run: FleetOperationRow };

/** Records a reconciliation run and queues it; one unfinished run per environment. */
export async function startReconciliation(
  pool: Pool,
  boss: PgBoss,
  environment: string,
  request: ReconcileRequest,
  requestedBy: string,
): Promise<StartOutcome> {
  return transaction(pool, async (tx) => {
    await lockFleetRequests(tx, "reconcile", environment);
    const open = await openFleetOperation(tx, "reconcile", environment);
    if (open) return { outcome: "conflict", run: open };
    const { rows } = await tx.query<FleetOperationRow>(
      `insert into fleet_operations (kind, environment, status, request_json, requested_by)
       values ('reconcile', $1, 'queued', $2, $3) returning *`,
      [environment, JSON.stringify(request), requestedBy],
    );
    await addFleetEvents(tx, rows[0].id, [
      {
        type: "queued",
        message: `${request.dry_run ? "dry run" : `acting on ${request.act_on.join(", ")}`} requested by ${requestedBy}`,
      },
    ]);
    await enqueueFleet(boss, tx, { operationId: rows[0].id, kind: "reconcile" });
    return { outcome: "created", run: rows[0] };
  });
}

/** Runs one reconciliation: the three views, the findings, the actions asked for. */
export async function runReconciliation(deps: ReconcileDeps, id: string): Promise<void> {
  const { rows } = await deps.pool.query<FleetOperationRow>(
    `update fleet_operations set status = 'running', attempts = attempts + 1, worker_id = $2,
       started_at = coalesce(started_at, now()), updated_at = now()
     where id = $1 and kind = 'reconcile' and finished_at is null returning *`,
    [id, deps.workerId],
  );
  const op = rows[0];
  if (!op) return;
  const request = reconcileRequest.parse(op.request_json);
  const mode = request.dry_run ? "dry_run" : "act";
  const events: FleetEvent[] = [];
  const flush = async () => {
    await addFleetEvents(deps.pool, id, events.splice(0));
  };
  // The final status and the events not yet written go in one transaction: a stream ends once
  // the run is final, so nothing it should send may come after.
  const end = (set: string, value: string) =>
    transaction(deps.pool, async (tx) => {
      await tx.query(
        `update fleet_operations set ${set}, finished_at = now(), updated_at = now() where id = $1`,
        [id, value],
      );
      await addFleetEvents(tx, id, events.splice(0));
    });
  try {
    const threshold = request.heartbeat_threshold_seconds ?? deps.heartbeatThresholdSeconds;
    const findings = await findMismatches(deps, threshold, events);
    await flush();
    if (!request.dry_run) {
      for (const f of findings.filter((x) => request.act_on.includes(x.kind))) {
        f.action = await act(deps, id, f, threshold);
        deps.metrics.reconcileAction(f.kind, f.action.outcome);
        events.push({
          type: "action",
          message: `${f.kind} ${f.stack ?? f.droplet_id ?? f.account_id}: ${f.action.outcome}: ${f.action.message}`,
          data: { ...f },
        });
        await flush();
      }
    }
    const counts = Object.fromEntries(
      FINDING_KINDS.map((k) => [k, findings.filter((f) => f.kind === k).length]),
    );
    deps.metrics.reconcileFindings(counts);
    deps.metrics.reconcileRun(mode, "succeeded");
    const result = {
      dry_run: request.dry_run,
      act_on: request.act_on,
      heartbeat_threshold_seconds: threshold,
      counts,
      findings,
    };
    events.push({
      type: "succeeded",
      message: `${findings.length} mismatch(es)${request.dry_run ? " (dry run: nothing changed)" : ""}`,
      data: { counts },
    });
    await end("status = 'succeeded', result_json = $2", JSON.stringify(result));
  } catch (err) {
    const message = deps.scrubber
      .text(err instanceof Error ? err.message : String(err))
      .slice(0, 2000);
    deps.metrics.reconcileRun(mode, "failed");
    events.push({ type: "failed", message });
    await end("status = 'failed', error_message = $2", message);
    deps.log.error({ reconciliation: id, err: message }, "reconciliation failed");
  }
}
