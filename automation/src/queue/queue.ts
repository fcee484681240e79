import { PgBoss } from "pg-boss";
import type { PoolClient } from "pg";

export const OPERATIONS_QUEUE = "toolbox-operations";
/** Jobs whose retries ran out (including workers lost mid-run) land here to be marked failed. */
export const DEAD_LETTER_QUEUE = "toolbox-operations-dead";
export const HEARTBEAT_SWEEP_QUEUE = "toolbox-heartbeat-sweep";
/** NOTIFY channel raised (on commit) by every transaction that enqueues an operation. */
export const OPERATIONS_CHANNEL = "agentopia_toolbox_operations";

export interface OperationJob {
  operationId: string;
  accountId: string;
}

export interface QueueOptions {
  connectionString: string;
  retryLimit: number;
  /** First retry delay in seconds; doubles each retry (with jitter). */
  retryDelaySeconds: number;
  /** A running job's worker refreshes its claim this often; a job that misses it is retried. */
  heartbeatSeconds: number;
  /** How often pg-boss checks for lost jobs (seconds). */
  superviseIntervalSeconds: number;
  /** Runs pg-boss's cron (heartbeat sweep); off for processes that only serve the API. */
  schedule: boolean;
}

export const defaultQueueOptions = {
  retryDelaySeconds: 5,
  heartbeatSeconds: 30,
  superviseIntervalSeconds: 15,
  schedule: true,
} satisfies Partial<QueueOptions>;

/** Starts pg-boss (it installs or migrates its own schema `pgboss`) and declares the queues. */
export async function startQueue(
  opts: QueueOptions,
  onError: (err: Error) => void,
): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: opts.connectionString,
    superviseIntervalSeconds: opts.superviseIntervalSeconds,
    // Lost jobs (missed heartbeats) are found by the monitor pass.
    monitorIntervalSeconds: opts.superviseIntervalSeconds,
    // The ready count that switches workers into burst mode comes from this cache.
    queueCacheIntervalSeconds: opts.superviseIntervalSeconds,
    schedule: opts.schedule,
    // The operations worker LISTENs on its own channel (jobLoop.ts); pg-boss's is not needed.
    useListenNotify: false,
    max: 10,
  });
  boss.on("error", onError);
  await boss.start();
  await boss.createQueue(DEAD_LETTER_QUEUE, { retryLimit: 5, retryDelay: 1, retryBackoff: true });
  const queueOptions = {
    retryLimit: opts.retryLimit,
    retryDelay: opts.retryDelaySeconds,
    retryBackoff: true,
    retryDelayMax: 600,
    heartbeatSeconds: opts.heartbeatSeconds,
    // A heartbeat-refreshed job needs no short expiry; this only bounds a pathological run.
    expireInSeconds: 4 * 3600,
    deadLetter: DEAD_LETTER_QUEUE,
    notify: false,
  };
  if ((await boss.getQueue(OPERATIONS_QUEUE)) === null) {
    await boss.createQueue(OPERATIONS_QUEUE, queueOptions);
  } else {
    await boss.updateQueue(OPERATIONS_QUEUE, queueOptions);
  }
  if ((await boss.getQueue(HEARTBEAT_SWEEP_QUEUE)) === null) {
    await boss.createQueue(HEARTBEAT_SWEEP_QUEUE, { retryLimit: 0 });
  }
  return boss;
}

/**
 * Enqueues within the caller's transaction, so an operation row never exists without its job, and
 * NOTIFYs the workers; PostgreSQL delivers the notification only when the transaction commits.
 * Jobs carry no singleton key: an account's order is the one-open-operation index's, and the
 * worker's account lock keeps its attempts apart (decision 0033).
 */
export async function enqueueOperation(
  boss: PgBoss,
  tx: PoolClient,
  job: OperationJob,
): Promise<void> {
  await boss.send(OPERATIONS_QUEUE, job, {
    db: { executeSql: (text, values) => tx.query(text, values) },
  });
  await tx.query("select pg_notify($1, '')", [OPERATIONS_CHANNEL]);
}
