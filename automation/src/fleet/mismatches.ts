/**
 * The reconciliation's three views (the service's records, the engine's stacks, DigitalOcean's
 * droplets) and the mismatches between them, each reported once with its kind.
 */
import {
  environmentTag,
  isAccountId,
  STACK_PREFIX,
  TOOLBOX_TAG,
} from "@agentopia-toolboxes/contract";
import type { Pool } from "pg";
import type { ToolboxEngine } from "../engine/types";
import type { DropletApi, ToolboxDroplet } from "./digitalocean";
import type { FleetEvent } from "./events";
import type { FindingKind } from "./reconcileRequest";

export interface Finding {
  kind: FindingKind;
  account_id?: string;
  stack?: string;
  droplet_id?: string;
  droplet_name?: string;
  reason: string;
  action?: { outcome: "done" | "refused" | "failed" | "gone"; message: string };
}

/** What the views are read from. */
export interface ViewDeps {
  pool: Pool;
  engine: ToolboxEngine;
  environment: string;
  /** The DigitalOcean API; absent: droplets are not compared (no token). */
  droplets?: () => Promise<DropletApi>;
}

export interface RecordView {
  account_id: string;
  status: string;
  stack_name: string;
  managed_by: "service" | "operator";
  operator_toolbox_id: string | null;
  quiet_seconds: number | null;
  open_kind: string | null;
}

/** The stack's own name whatever the backend prefixes (`org/project/acct-…` on Pulumi Cloud). */
export const shortName = (name: string) => name.split("/").pop() ?? name;

/** The short names of the engine's stacks. */
export async function stackNames(engine: ToolboxEngine): Promise<Set<string>> {
  return new Set((await engine.listStacks()).map((s) => shortName(s.name)));
}

/** Reads the three views (each said in an event) and returns the mismatches (each one too). */
export async function findMismatches(
  deps: ViewDeps,
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
