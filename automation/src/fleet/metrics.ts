import type { Pool } from "pg";
import { Counter, Gauge, type Registry } from "prom-client";

export interface FleetMetrics {
  waveFinished(outcome: "completed" | "stopped"): void;
  toolboxFinished(outcome: string): void;
  upgradeFinished(status: string): void;
  reconcileRun(mode: "dry_run" | "act", outcome: "succeeded" | "failed"): void;
  reconcileFindings(counts: Record<string, number>): void;
  reconcileAction(kind: string, outcome: string): void;
  canarySync(outcome: "succeeded" | "failed"): void;
}

/** The fleet's metrics, on the service's registry (`GET /metrics`). */
export function createFleetMetrics(registry: Registry, pool: Pool): FleetMetrics {
  const counter = (name: string, help: string, labelNames: string[]) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const waves = counter("automation_upgrade_waves_total", "Upgrade waves that ended, by outcome", [
    "outcome",
  ]);
  const toolboxes = counter(
    "automation_upgrade_toolboxes_total",
    "Toolboxes of upgrades that reached a final state (upgraded, skipped, rolled_back, rollback_failed)",
    ["outcome"],
  );
  const upgrades = counter("automation_upgrades_total", "Upgrades that ended, by status", [
    "status",
  ]);
  const runs = counter("automation_reconcile_runs_total", "Reconciliation runs that ended", [
    "mode",
    "outcome",
  ]);
  const actions = counter("automation_reconcile_actions_total", "Reconciliation actions taken", [
    "kind",
    "outcome",
  ]);
  const syncs = counter("automation_canary_syncs_total", "Registrations of operator canaries", [
    "outcome",
  ]);
  const findings = new Gauge({
    name: "automation_reconcile_findings",
    help: "Mismatches the last reconciliation run found, by kind",
    labelNames: ["kind"],
    registers: [registry],
  });
  new Gauge({
    name: "automation_upgrade_targets",
    help: "Toolboxes of unfinished upgrades, by state",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ state: string; n: number }>(
        `select t.state, count(*)::int as n from fleet_upgrade_targets t
         join fleet_operations f on f.id = t.upgrade_id where f.finished_at is null
         group by t.state`,
      );
      this.reset();
      for (const r of rows) this.set({ state: r.state }, r.n);
    },
  });
  return {
    waveFinished: (outcome) => waves.inc({ outcome }),
    toolboxFinished: (outcome) => toolboxes.inc({ outcome }),
    upgradeFinished: (status) => upgrades.inc({ status }),
    reconcileRun: (mode, outcome) => runs.inc({ mode, outcome }),
    reconcileFindings(counts) {
      findings.reset();
      for (const [kind, n] of Object.entries(counts)) findings.set({ kind }, n);
    },
    reconcileAction: (kind, outcome) => actions.inc({ kind, outcome }),
    canarySync: (outcome) => syncs.inc({ outcome }),
  };
}
