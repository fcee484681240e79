import type { PoolClient } from "pg";
import type { PgBoss } from "pg-boss";

/** Upgrade drivers and reconciliation runs. */
export const FLEET_QUEUE = "toolbox-fleet-operations";
export const FLEET_DEAD_LETTER_QUEUE = "toolbox-fleet-operations-dead";
/** NOTIFY channel raised (on commit) by every transaction that enqueues a fleet operation. */
export const FLEET_CHANNEL = "agentopia_toolbox_fleet_operations";
/** Cron queues: the canaries' registration and the scheduled dry-run reconciliation. */
export const CANARY_SYNC_QUEUE = "toolbox-canary-sync";
export const RECONCILE_SCHEDULE_QUEUE = "toolbox-reconcile-schedule";

type FleetKind = "upgrade" | "reconcile";

export interface FleetJob {
  operationId: string;
  kind: FleetKind;
}

/** Declares the fleet queues (pg-boss keeps their retries, job heartbeats and dead letters). */
export async function declareFleetQueues(boss: PgBoss, heartbeatSeconds: number): Promise<void> {
  if ((await boss.getQueue(FLEET_DEAD_LETTER_QUEUE)) === null) {
    await boss.createQueue(FLEET_DEAD_LETTER_QUEUE, { retryLimit: 5, retryDelay: 1 });
  }
  const options = {
    // A driver that fails (a database blip) resumes from what is recorded: retry for long.
    retryLimit: 50,
    retryDelay: 1,
    retryBackoff: true,
    retryDelayMax: 60,
    heartbeatSeconds,
    // pg-boss's most (24 h); a driver expired after it is retried and resumes where it was.
    expireInSeconds: 23 * 3600,
    deadLetter: FLEET_DEAD_LETTER_QUEUE,
    notify: false,
  };
  if ((await boss.getQueue(FLEET_QUEUE)) === null) await boss.createQueue(FLEET_QUEUE, options);
  else await boss.updateQueue(FLEET_QUEUE, options);
  for (const name of [CANARY_SYNC_QUEUE, RECONCILE_SCHEDULE_QUEUE]) {
    if ((await boss.getQueue(name)) === null) await boss.createQueue(name, { retryLimit: 0 });
  }
}

/** Enqueues within the caller's transaction; the workers are woken on commit. */
export async function enqueueFleet(boss: PgBoss, tx: PoolClient, job: FleetJob): Promise<void> {
  await boss.send(FLEET_QUEUE, job, {
    db: { executeSql: (text, values) => tx.query(text, values) },
  });
  await tx.query("select pg_notify($1, '')", [FLEET_CHANNEL]);
}
