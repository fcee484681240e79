/**
 * The fleet side of a service process: the fleet queue's worker (upgrade drivers and
 * reconciliation runs, on pg-boss like the operations), the dead-letter handler, the canary
 * registration (at start and on its schedule) and the scheduled dry-run reconciliation.
 */
import type { Logger } from "pino";
import type { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import type { Registry } from "prom-client";
import type { ToolboxEngine } from "../engine/types";
import { JobLoop } from "../queue/jobLoop";
import type { SecretScrubber } from "../secrets/scrubber";
import type { TokenCipher } from "../secrets/tokenCipher";
import { syncCanaries, type CanarySync } from "./canaries";
import { digitalOceanApi, type DropletApi } from "./digitalocean";
import { addFleetEvents } from "./events";
import { probeBackend, type BackendProbe } from "./health";
import { createFleetMetrics, type FleetMetrics } from "./metrics";
import {
  CANARY_SYNC_QUEUE,
  declareFleetQueues,
  FLEET_CHANNEL,
  FLEET_DEAD_LETTER_QUEUE,
  FLEET_QUEUE,
  RECONCILE_SCHEDULE_QUEUE,
  type FleetJob,
} from "./queue";
import { runReconciliation, startReconciliation } from "./reconcile";
import { driveUpgrade } from "./upgradeDriver";

/** The service's settings the fleet needs (config.ts documents each). */
export interface FleetSettings {
  environment: string;
  requireDigestPins: boolean;
  target: "local" | "digitalocean";
  dtmaImage?: string;
  backendImage?: string;
  canaryStacks: readonly string[];
  canarySyncSchedule: string;
  reconcileSchedule: string;
  reconcileHeartbeatThresholdSeconds: number;
  digitalocean?: { token: string; apiUrl: string };
}

export interface FleetOptions {
  pool: Pool;
  boss: PgBoss;
  engine: ToolboxEngine;
  cipher: TokenCipher;
  scrubber: SecretScrubber;
  log: Logger;
  registry: Registry;
  workerId: string;
  settings: FleetSettings;
  /** 0: this process serves the API only (no driver, no schedules). */
  slots: number;
  heartbeatSeconds: number;
  pollIntervalSeconds: number;
  /** Ticks of an upgrade driver (ms). */
  driverPollMs: number;
  connectionString?: string;
  /** How backends are asked for their /status (default: HTTP(S) with a 5 s timeout). */
  probe?: BackendProbe;
}

export interface RunningFleet {
  metrics: FleetMetrics;
  /** Registers the operator stacks' canaries now (also done at start and on the schedule). */
  syncCanaries(): Promise<CanarySync>;
  stop(timeoutMs: number): Promise<void>;
}

export async function startFleet(opts: FleetOptions): Promise<RunningFleet> {
  const { pool, boss, log, settings } = opts;
  const metrics = createFleetMetrics(opts.registry, pool);
  await declareFleetQueues(boss, opts.heartbeatSeconds);
  const canaries = () =>
    syncCanaries({
      pool,
      engine: opts.engine,
      cipher: opts.cipher,
      log,
      metrics,
      scrubber: opts.scrubber,
      stacks: settings.canaryStacks,
    });
  const running: RunningFleet = { metrics, syncCanaries: canaries, stop: () => Promise.resolve() };
  if (opts.slots < 1) return running;

  let stopping = false;
  let droplets: Promise<DropletApi> | undefined;
  const doApi = settings.digitalocean;
  const loop = new JobLoop<FleetJob>({
    boss,
    queue: FLEET_QUEUE,
    slots: opts.slots,
    pollIntervalMs: opts.pollIntervalSeconds * 1000,
    listen: opts.connectionString
      ? { connectionString: opts.connectionString, channel: FLEET_CHANNEL }
      : undefined,
    log,
    handle: async (job) => {
      if (job.data.kind === "upgrade") {
        await driveUpgrade(
          {
            pool,
            boss,
            cipher: opts.cipher,
            log,
            metrics,
            probe: opts.probe ?? probeBackend(),
            workerId: opts.workerId,
            pollMs: opts.driverPollMs,
            defaults: {
              target: settings.target,
              dtmaImage: settings.dtmaImage,
              backendImage: settings.backendImage,
            },
            stopping: () => stopping,
          },
          job.data.operationId,
        );
        return;
      }
      await runReconciliation(
        {
          pool,
          boss,
          engine: opts.engine,
          scrubber: opts.scrubber,
          log,
          metrics,
          environment: settings.environment,
          heartbeatThresholdSeconds: settings.reconcileHeartbeatThresholdSeconds,
          droplets: doApi ? () => (droplets ??= digitalOceanApi(doApi)) : undefined,
          workerId: opts.workerId,
        },
        job.data.operationId,
      );
    },
  });
  await loop.start();
  await boss.work<FleetJob>(
    FLEET_DEAD_LETTER_QUEUE,
    { pollingIntervalSeconds: 2 },
    async ([job]) => {
      if (!job) return;
      const message =
        "its driver failed again and again; resume it (or abort) once the cause is fixed";
      const { rows } = await pool.query<{ id: string }>(
        `update fleet_operations set
         status = case kind when 'upgrade' then 'stopped' else 'failed' end,
         stop_reason = case kind when 'upgrade' then $2 end,
         error_message = case kind when 'reconcile' then $2 end,
         finished_at = case kind when 'reconcile' then now() end, updated_at = now()
       where id = $1 and finished_at is null and status <> 'stopped' returning id`,
        [job.data.operationId, message],
      );
      if (rows[0]) await addFleetEvents(pool, rows[0].id, [{ type: "stopped", message }]);
    },
  );

  await boss.work(CANARY_SYNC_QUEUE, async () => {
    await canaries();
  });
  await boss.work(RECONCILE_SCHEDULE_QUEUE, async () => {
    const out = await startReconciliation(
      pool,
      boss,
      settings.environment,
      { dry_run: true, act_on: [] },
      "schedule",
    );
    if (out.outcome === "conflict")
      log.info({ run: out.run.id }, "a reconciliation is running; scheduled run skipped");
  });
  if (settings.canaryStacks.length > 0) {
    if (settings.canarySyncSchedule)
      await boss.schedule(CANARY_SYNC_QUEUE, settings.canarySyncSchedule);
    // At start, in the background: the engine may take a while (or have no CLI).
    void canaries().catch((err: Error) =>
      log.warn({ err: err.message }, "canary registration failed"),
    );
  }
  if (settings.reconcileSchedule)
    await boss.schedule(RECONCILE_SCHEDULE_QUEUE, settings.reconcileSchedule);
  else await boss.unschedule(RECONCILE_SCHEDULE_QUEUE).catch(() => undefined);

  running.stop = async (timeoutMs) => {
    stopping = true;
    await loop.stop(timeoutMs);
  };
  return running;
}
