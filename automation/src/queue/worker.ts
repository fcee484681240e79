/**
 * The operations worker of a process: its slots on the operations queue (jobLoop.ts), each job an
 * attempt (runOperation.ts), and the dead-letter handler for jobs whose retries ran out.
 */
import { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import { getOperation, type OperationRow } from "../db/rows";
import { whenAccountIsFree } from "./accountClaim";
import { JobLoop } from "./jobLoop";
import {
  DEAD_LETTER_QUEUE,
  OPERATIONS_CHANNEL,
  OPERATIONS_QUEUE,
  type OperationJob,
} from "./queue";
import { failOperation } from "./results";
import { runOperation, type OperationDeps } from "./runOperation";

export interface WorkerDeps extends OperationDeps {
  boss: PgBoss;
  concurrency: number;
  /** The queue's retry limit: the last attempt fails the operation instead of throwing. */
  retryLimit: number;
  /** Backstop poll (seconds) for retries that became due; new jobs wake workers through NOTIFY. */
  pollingIntervalSeconds?: number;
  /** LISTEN for new operations on this database (absent: poll only). */
  connectionString?: string;
}

export interface RunningWorker {
  /** Stops taking jobs and waits up to `timeoutMs` for running operations to finish. */
  stop(timeoutMs: number): Promise<void>;
}

/** Starts the operation worker loop and the dead-letter handler on this process's pg-boss. */
export async function startWorker(shared: WorkerDeps): Promise<RunningWorker> {
  if (shared.concurrency < 1) return { stop: () => Promise.resolve() };
  // Connections of its own: an attempt holds one for its whole length (account lock, events,
  // result), and API traffic on the shared pool can never make a free slot wait for one. Twice
  // the slots: a slot's next attempt starts while the previous one records its result.
  const pool = shared.connectionString
    ? new Pool({ connectionString: shared.connectionString, max: 2 * shared.concurrency + 2 })
    : shared.pool;
  if (pool !== shared.pool) {
    pool.on("error", (err) => shared.log.warn({ err: err.message }, "idle worker connection lost"));
  }
  const deps = { ...shared, pool };
  const loop = new JobLoop<OperationJob>({
    boss: deps.boss,
    queue: OPERATIONS_QUEUE,
    slots: deps.concurrency,
    pollIntervalMs: (deps.pollingIntervalSeconds ?? 2) * 1000,
    listen: deps.connectionString
      ? { connectionString: deps.connectionString, channel: OPERATIONS_CHANNEL }
      : undefined,
    log: deps.log,
    handle: (job, release) =>
      runOperation(deps, job.data, job.retryCount, deps.retryLimit, release),
  });
  await loop.start();
  await deps.boss.work<OperationJob>(
    DEAD_LETTER_QUEUE,
    { pollingIntervalSeconds: 2 },
    async ([job]) => {
      if (job) await giveUp(deps, job.data.operationId);
    },
  );
  return {
    stop: async (timeoutMs) => {
      await loop.stop(timeoutMs);
      if (pool !== shared.pool) await pool.end();
    },
  };
}

/**
 * Retries exhausted (or the job was lost on every attempt): the operation fails, visibly. An
 * attempt may still be running whose claim pg-boss gave up (decision 0033): the operation is
 * judged once the account is free, so that attempt's outcome is never overwritten.
 */
async function giveUp(deps: WorkerDeps, operationId: string): Promise<void> {
  const op = await getOperation(deps.pool, operationId);
  if (!op || isFinal(op)) return;
  await whenAccountIsFree(deps.pool, op.account_id, async (db) => {
    const now = await getOperation(db, operationId);
    if (!now || isFinal(now)) return;
    await failOperation(
      db,
      now,
      now.error_message ?? "gave up after repeated failed or interrupted attempts",
    );
    deps.metrics?.operationFinished(now.kind, "failed", 0);
  });
}

const isFinal = (op: OperationRow) => op.status === "succeeded" || op.status === "failed";
