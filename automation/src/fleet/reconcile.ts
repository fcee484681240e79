/**
 * Orphan reconciliation: three views compared, every mismatch reported once with its kind.
 *   record_without_stack  a live record of the service whose `acct-*` stack does not exist (one
 *                         already error_provisioning is not reported again)
 *   stack_without_record  an `acct-*` stack without a live record (nor an operation creating one)
 *   untracked_droplet     a droplet tagged `agentopia-toolbox` whose account has no stack (and is
 *                         no canary an operator stack declares)
 *   stale_heartbeat       a toolbox that has a stack but no heartbeat for longer than the threshold
 * A dry run (the default) changes nothing. Acting is per kind and explicit: destroy the orphaned
 * stack; mark the record `error_provisioning` with the reason; delete the droplet, only when it
 * carries this environment's tag. Each action re-checks its finding under the account's lock.
 */
import {
  environmentTag,
  isAccountId,
  STACK_PREFIX,
  TOOLBOX_TAG,
} from "@agentopia-toolboxes/contract";
import type { Logger } from "pino";
import type { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import { z } from "zod";
import type { ToolboxEngine } from "../engine/types";
import type { SecretScrubber } from "../secrets/scrubber";
import { transaction } from "../queue/worker";
import type { DropletApi, ToolboxDroplet } from "./digitalocean";
import { addFleetEvents, type FleetEvent } from "./events";
import type { FleetMetrics } from "./metrics";
import { enqueueFleet } from "./queue";
import type { FleetOperationRow } from "./upgrades";

export const FINDING_KINDS = [
  "record_without_stack",
  "stack_without_record",
  "untracked_droplet",
  "stale_heartbeat",
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export const reconcileRequest = z
  .object({
    dry_run: z.boolean().default(true),
    act_on: z
      .array(z.enum(FINDING_KINDS))
      .max(FINDING_KINDS.length)
      .refine((k) => new Set(k).size === k.length, "has duplicates")
      .default([]),
    heartbeat_threshold_seconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86_400)
      .optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.dry_run && v.act_on.length > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["dry_run"],
        message: "must be false to act on the kinds act_on names",
      });
    }
    if (!v.dry_run && v.act_on.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["act_on"],
        message: "must name the kinds to act on when dry_run is false",
      });
    }
  });
export type ReconcileRequest = z.infer<typeof reconcileRequest>;

export interface Finding {
  kind: FindingKind;
  account_id?: string;
  stack?: string;
  droplet_id?: string;
  droplet_name?: string;
  reason: string;
  action?: { outcome: "done" | "refused" | "failed" | "gone"; message: string };
}

export interface ReconcileDeps {
  pool: Pool;
  boss: PgBoss;
  engine: ToolboxEngine;
  scrubber: SecretScrubber;
  log: Logger;
  metrics: FleetMetrics;
  environment: string;
  heartbeatThresholdSeconds: number;
  /** The DigitalOcean API; absent: droplets are not compared (no token). */
  droplets?: () => Promise<DropletApi>;
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
    await tx.query("select pg_advisory_xact_lock(hashtextextended($1, 11))", [
      `reconcile:${environment}`,
    ]);
    const { rows: open } = await tx.query<FleetOperationRow>(
      "select * from fleet_operations where kind = 'reconcile' and environment = $1 and finished_at is null",
      [environment],
    );
    if (open[0]) return { outcome: "conflict", run: open[0] };
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

interface RecordView {
  account_id: string;
  status: string;
  stack_name: string;
  managed_by: "service" | "operator";
  operator_toolbox_id: string | null;
  quiet_seconds: number | null;
  open_kind: string | null;
}

/** The stack's own name whatever the backend prefixes (`org/project/acct-…` on Pulumi Cloud). */
const shortName = (name: string) => name.split("/").pop() ?? name;

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
    await deps.pool.query(
      `update fleet_operations set status = 'succeeded', result_json = $2, finished_at = now(),
         updated_at = now() where id = $1`,
      [id, JSON.stringify(result)],
    );
    await flush();
  } catch (err) {
    const message = deps.scrubber
      .text(err instanceof Error ? err.message : String(err))
      .slice(0, 2000);
    deps.metrics.reconcileRun(mode, "failed");
    events.push({ type: "failed", message });
    await deps.pool.query(
      `update fleet_operations set status = 'failed', error_message = $2, finished_at = now(),
         updated_at = now() where id = $1`,
      [id, message],
    );
    await flush();
    deps.log.error({ reconciliation: id, err: message }, "reconciliation failed");
  }
}

async function findMismatches(
  deps: ReconcileDeps,
  thresholdSeconds: number,
  events: FleetEvent[],
): Promise<Finding[]> {
  const { rows: records } = await deps.pool.query<RecordView>(
    `select e.account_id::text, e.status::text, e.stack_name, e.managed_by, e.operator_toolbox_id,
       extract(epoch from now() - coalesce(e.last_heartbeat_at, e.updated_at))::float8 as quiet_seconds,
       (select o.kind from toolbox_operations o where o.account_id = e.account_id
          and o.status in ('queued', 'running') limit 1) as open_kind
     from account_tool_environments e
     where e.status not in ('deprovisioned', 'inactive')`,
  );
  const { rows: opening } = await deps.pool.query<{ account_id: string }>(
    "select distinct account_id::text from toolbox_operations where status in ('queued', 'running')",
  );
  const stacks = (await deps.engine.listStacks()).map((s) => s.name);
  const accountStacks = new Map<string, string>();
  for (const name of stacks) {
    const short = shortName(name);
    if (short.startsWith(STACK_PREFIX)) accountStacks.set(short, name);
  }
  events.push({
    type: "view",
    message: `${records.length} live record(s), ${stacks.length} stack(s) (${accountStacks.size} account stacks)`,
    data: { records: records.length, stacks: stacks.length, account_stacks: accountStacks.size },
  });
  let droplets: ToolboxDroplet[] | undefined;
  if (deps.droplets) {
    droplets = await (await deps.droplets()).listDroplets(TOOLBOX_TAG);
    events.push({
      type: "view",
      message: `${droplets.length} droplet(s) tagged ${TOOLBOX_TAG}`,
      data: { droplets: droplets.length },
    });
  } else {
    events.push({
      type: "view",
      message: "droplets not compared: no DIGITALOCEAN_TOKEN is set",
      data: { droplets: null },
    });
  }

  const findings: Finding[] = [];
  const live = new Set(records.filter((r) => r.managed_by === "service").map((r) => r.account_id));
  const busy = new Set(opening.map((o) => o.account_id));
  const canaries = new Set(
    records.filter((r) => r.managed_by === "operator").map((r) => r.operator_toolbox_id),
  );
  for (const r of records) {
    // A record with an operation in flight is changing; its canary's stack is an operator's.
    if (r.open_kind !== null) continue;
    const hasStack = r.managed_by === "operator" || accountStacks.has(shortName(r.stack_name));
    // error_provisioning is what acting on it would write (and what a provision that failed
    // before its stack existed leaves): already said.
    if (!hasStack && r.status !== "error_provisioning") {
      findings.push({
        kind: "record_without_stack",
        account_id: r.account_id,
        stack: r.stack_name,
        reason: `the record is ${r.status} but stack ${r.stack_name} does not exist`,
      });
    } else if (
      ["active", "unresponsive", "awaiting_heartbeat"].includes(r.status) &&
      r.quiet_seconds !== null &&
      r.quiet_seconds > thresholdSeconds
    ) {
      findings.push({
        kind: "stale_heartbeat",
        account_id: r.account_id,
        stack: r.stack_name,
        reason: `no heartbeat for ${Math.round(r.quiet_seconds)} s (threshold ${thresholdSeconds} s); the record is ${r.status}`,
      });
    }
  }
  for (const [short, name] of accountStacks) {
    const account = short.slice(STACK_PREFIX.length);
    if (live.has(account) || busy.has(account)) continue;
    findings.push({
      kind: "stack_without_record",
      account_id: account,
      stack: name,
      reason: `stack ${name} exists but no live record of the service has account ${account}`,
    });
  }
  const envTag = environmentTag(deps.environment);
  for (const d of droplets ?? []) {
    const account = d.accountId;
    if (
      account !== undefined &&
      (accountStacks.has(`${STACK_PREFIX}${account}`) || canaries.has(account))
    )
      continue;
    findings.push({
      kind: "untracked_droplet",
      ...(account !== undefined && isAccountId(account) ? { account_id: account } : {}),
      droplet_id: d.id,
      droplet_name: d.name,
      reason: `droplet ${d.name} (${d.id}) is tagged ${TOOLBOX_TAG} but no stack declares it${d.tags.includes(envTag) ? "" : `; it does not carry ${envTag}, so it is never deleted from here`}`,
    });
  }
  for (const f of findings) {
    events.push({ type: "finding", message: `${f.kind}: ${f.reason}`, data: f });
  }
  return findings;
}

/** One action, on one finding, after re-checking it; never throws (the outcome says). */
async function act(
  deps: ReconcileDeps,
  runId: string,
  f: Finding,
  thresholdSeconds: number,
): Promise<NonNullable<Finding["action"]>> {
  try {
    switch (f.kind) {
      case "record_without_stack":
      case "stale_heartbeat":
        return await markRecord(deps, runId, f, thresholdSeconds);
      case "stack_without_record":
        return await destroyOrphan(deps, f);
      case "untracked_droplet":
        return await deleteDroplet(deps, f);
    }
  } catch (err) {
    return {
      outcome: "failed",
      message: deps.scrubber.text(err instanceof Error ? err.message : String(err)).slice(0, 1000),
    };
  }
}

async function markRecord(
  deps: ReconcileDeps,
  runId: string,
  f: Finding,
  thresholdSeconds: number,
): Promise<NonNullable<Finding["action"]>> {
  const stacks = new Set((await deps.engine.listStacks()).map((s) => shortName(s.name)));
  return transaction(deps.pool, async (tx) => {
    const { rows } = await tx.query<RecordView>(
      `select account_id::text, status::text, stack_name, managed_by,
         extract(epoch from now() - coalesce(last_heartbeat_at, updated_at))::float8 as quiet_seconds,
         (select o.kind from toolbox_operations o where o.account_id = e.account_id
            and o.status in ('queued', 'running') limit 1) as open_kind
       from account_tool_environments e where account_id = $1 for update`,
      [f.account_id],
    );
    const r = rows[0];
    const still =
      r !== undefined &&
      r.open_kind === null &&
      !["deprovisioned", "inactive"].includes(r.status) &&
      (f.kind === "record_without_stack"
        ? r.managed_by === "service" && !stacks.has(shortName(r.stack_name))
        : (r.quiet_seconds ?? 0) > thresholdSeconds);
    if (!still) return { outcome: "gone", message: "no longer a mismatch; left alone" };
    const reason = `reconciliation ${runId}: ${f.reason}`;
    await tx.query(
      `update account_tool_environments set status = 'error_provisioning',
         provisioning_error_message = $2, updated_at = now() where account_id = $1`,
      [f.account_id, reason],
    );
    return { outcome: "done", message: `marked error_provisioning: ${f.reason}` };
  });
}

/**
 * Destroys a stack no record owns, holding the account's lock (the one every operation of the
 * account takes), after checking again that no record and no operation has appeared.
 */
async function destroyOrphan(
  deps: ReconcileDeps,
  f: Finding,
): Promise<NonNullable<Finding["action"]>> {
  const account = f.account_id!;
  const db = await deps.pool.connect();
  let locked = false;
  try {
    const { rows } = await db.query<{ ok: boolean }>(
      "select pg_try_advisory_lock(hashtextextended($1, 7)) as ok",
      [account],
    );
    locked = rows[0].ok;
    if (!locked) return { outcome: "refused", message: "an operation of this account is running" };
    const { rows: now } = await db.query<{ n: number }>(
      `select (select count(*) from account_tool_environments where account_id::text = $1
                and managed_by = 'service' and status not in ('deprovisioned', 'inactive'))
            + (select count(*) from toolbox_operations where account_id::text = $1
                and status in ('queued', 'running'))::int as n`,
      [account],
    );
    if (Number(now[0].n) > 0)
      return { outcome: "gone", message: "a record or an operation exists now; left alone" };
    await deps.engine.destroyStack(f.stack!, () => undefined);
    return { outcome: "done", message: `destroyed and removed ${f.stack}` };
  } finally {
    if (locked)
      await db
        .query("select pg_advisory_unlock(hashtextextended($1, 7))", [account])
        .catch(() => undefined);
    db.release();
  }
}

async function deleteDroplet(
  deps: ReconcileDeps,
  f: Finding,
): Promise<NonNullable<Finding["action"]>> {
  const tag = environmentTag(deps.environment);
  if (!deps.droplets) return { outcome: "refused", message: "no DIGITALOCEAN_TOKEN is set" };
  const api = await deps.droplets();
  // Read again: the droplet must still be there, untracked, and carry this environment's tag.
  const now = (await api.listDroplets(TOOLBOX_TAG)).find((d) => d.id === f.droplet_id);
  if (!now) return { outcome: "gone", message: "the droplet no longer exists" };
  if (!now.tags.includes(tag)) {
    return {
      outcome: "refused",
      message: `the droplet does not carry ${tag}: not this environment's`,
    };
  }
  const stacks = new Set((await deps.engine.listStacks()).map((s) => shortName(s.name)));
  if (now.accountId !== undefined && stacks.has(`${STACK_PREFIX}${now.accountId}`)) {
    return { outcome: "gone", message: "a stack declares it now; left alone" };
  }
  await api.deleteDroplet(now.id);
  return { outcome: "done", message: `deleted droplet ${now.name} (${now.id})` };
}
