/**
 * A tick's health gate: a toolbox whose step is done is healthy once a heartbeat since the step
 * started reports the expected DTMA image and then the backend's /status reports the expected
 * image, before the deadline; else it fails with its reason (or leaves the upgrade when it is
 * being deprovisioned).
 */
import type { DriverDeps } from "./driverDeps";
import type { FleetEvent } from "./events";
import { backendProblem, heartbeatProblem, type BackendStatus } from "./health";
import { TERMINAL, TERMINAL_SQL, type FleetOperationRow, type TargetState } from "./records";
import { rollbackImages, type PreviousImages } from "./rollback";
import type { UpgradePlan } from "./upgradeRequest";

/** A backend is asked at most this often per toolbox. */
const PROBE_EVERY_MS = 1000;
const PROBES_AT_ONCE = 16;

interface VerifyRow extends PreviousImages {
  account_id: string;
  environment_id: string;
  state: "verifying" | "verifying_rollback";
  wave: number;
  started_at: Date;
  deadline_at: Date;
  toolbox_status: string;
  last_heartbeat_at: Date | null;
  has_image_field: boolean;
  reported_image: string | null;
  backend_url: string | null;
  tokens_ciphertext: string | null;
  backend_ca: string | null;
}

const LEFT = new Set([
  "pending_deprovision",
  "deprovisioning",
  "deprovisioned",
  "error_deprovisioning",
]);

/** Health of the toolboxes whose step is done: proven, still awaited, or failed at the deadline. */
export async function verify(
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
