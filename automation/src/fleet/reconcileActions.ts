/**
 * Acting on a finding: destroy the orphaned stack; mark the record `error_provisioning` with the
 * reason; delete the droplet, only when it carries this environment's tag. Each action re-checks
 * its finding under the account's lock first.
 */
import { environmentTag, STACK_PREFIX, TOOLBOX_TAG } from "@agentopia-toolboxes/contract";
import type { SecretScrubber } from "../secrets/scrubber";
import { transaction } from "../db/transaction";
import { stackNames, shortName, type Finding, type RecordView, type ViewDeps } from "./mismatches";

export interface ActionDeps extends ViewDeps {
  scrubber: SecretScrubber;
}

/** One action, on one finding, after re-checking it; never throws (the outcome says). */
export async function act(
  deps: ActionDeps,
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
  deps: ActionDeps,
  runId: string,
  f: Finding,
  thresholdSeconds: number,
): Promise<NonNullable<Finding["action"]>> {
  const stacks = await stackNames(deps.engine);
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
  deps: ActionDeps,
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
  deps: ActionDeps,
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
  const stacks = await stackNames(deps.engine);
  if (now.accountId !== undefined && stacks.has(`${STACK_PREFIX}${now.accountId}`)) {
    return { outcome: "gone", message: "a stack declares it now; left alone" };
  }
  await api.deleteDroplet(now.id);
  return { outcome: "done", message: `deleted droplet ${now.name} (${now.id})` };
}
