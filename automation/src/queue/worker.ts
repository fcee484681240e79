import { isIP } from "node:net";
import type { Logger } from "pino";
import type { Pool, PoolClient } from "pg";
import type { PgBoss } from "pg-boss";
import type { Metrics } from "../metrics";
import { addEvent, getOperation, getToolbox, type OperationRow, type ToolboxRow } from "../db/rows";
import type { EngineEvent, StackRequest, ToolboxEngine, ToolboxOutputs } from "../engine/types";
import { EngineError } from "../engine/types";
import { sha256Hex, type TokenCipher } from "../secrets/tokenCipher";
import { stackRequestFor, type StackSettings } from "../stackConfig";
import { DEAD_LETTER_QUEUE, OPERATIONS_QUEUE, type OperationJob } from "./queue";

export interface WorkerDeps {
  pool: Pool;
  boss: PgBoss;
  engine: ToolboxEngine;
  cipher: TokenCipher;
  stackSettings: StackSettings;
  log: Logger;
  metrics?: Metrics;
  workerId: string;
  concurrency: number;
  /** The queue's retry limit: the last attempt fails the operation instead of throwing. */
  retryLimit: number;
  /** Base polling interval (seconds); new jobs also wake workers through LISTEN/NOTIFY. */
  pollingIntervalSeconds?: number;
}

/** Registers the operation worker and the dead-letter handler on this process's pg-boss. */
export async function startWorker(deps: WorkerDeps): Promise<void> {
  if (deps.concurrency < 1) return;
  await deps.boss.work<OperationJob>(
    OPERATIONS_QUEUE,
    {
      localConcurrency: deps.concurrency,
      batchSize: 1,
      pollingIntervalSeconds: deps.pollingIntervalSeconds ?? 2,
      // NOTIFY wakes workers for new jobs only; retries become due silently, so keep polling.
      notifyPollingIntervalSeconds: deps.pollingIntervalSeconds ?? 2,
      // With a backlog, a freed slot fetches the next job at once instead of waiting a poll.
      burstWhenReadyExceeds: 1,
    },
    async ([job]) => {
      if (job) await runOperation(deps, job.data.operationId, job.retryCount, deps.retryLimit);
    },
  );
  await deps.boss.work<OperationJob>(
    DEAD_LETTER_QUEUE,
    { pollingIntervalSeconds: 2 },
    async ([job]) => {
      if (job) await giveUp(deps, job.data.operationId);
    },
  );
}

/** Serializes an account across every worker on every machine for the length of one attempt. */
async function lockAccount(pool: Pool, accountId: string): Promise<PoolClient | undefined> {
  const client = await pool.connect();
  const { rows } = await client.query<{ ok: boolean }>(
    "select pg_try_advisory_lock(hashtextextended($1, 7)) as ok",
    [accountId],
  );
  if (rows[0]?.ok) return client;
  client.release();
  return undefined;
}

async function unlockAccount(client: PoolClient, accountId: string): Promise<void> {
  try {
    await client.query("select pg_advisory_unlock(hashtextextended($1, 7))", [accountId]);
    client.release();
  } catch {
    client.release(true);
  }
}

/**
 * One attempt at one operation. Returns normally when the operation reached a final state
 * (succeeded or permanently failed); throws to have pg-boss retry it with backoff.
 */
export async function runOperation(
  deps: WorkerDeps,
  operationId: string,
  retryCount: number,
  retryLimit: number,
): Promise<void> {
  const op = await getOperation(deps.pool, operationId);
  if (!op || op.status === "succeeded" || op.status === "failed") return;
  const lock = await lockAccount(deps.pool, op.account_id);
  if (!lock) throw new Error(`account ${op.account_id} is busy on another worker`);
  const started = Date.now();
  try {
    // A 'running' operation at pick-up means the previous attempt's worker died mid-run.
    const interrupted = op.status === "running";
    await deps.pool.query(
      `update toolbox_operations set status = 'running', attempts = attempts + 1, worker_id = $2,
         started_at = coalesce(started_at, now()), updated_at = now() where id = $1`,
      [op.id, deps.workerId],
    );
    const row = await markStarting(deps.pool, op);
    const req = stackRequestFor(deps.stackSettings, row);
    const events = eventSink(deps, op.id);
    await addEvent(deps.pool, op.id, "attempt", `attempt ${op.attempts + 1} on ${deps.workerId}`);
    try {
      if (interrupted) {
        await addEvent(
          deps.pool,
          op.id,
          "resumed",
          "previous attempt was interrupted; recovering the stack",
        );
        await deps.engine.recover(req, events.push);
      }
      await runWithLockRecovery(deps, op, req, events);
      deps.metrics?.operationFinished(op.kind, "succeeded", (Date.now() - started) / 1000);
    } catch (err) {
      await events.flush();
      const e =
        err instanceof EngineError
          ? err
          : new EngineError(String((err as Error)?.message ?? err), "transient");
      if (e.kind === "transient" && retryCount < retryLimit) {
        await deps.pool.query(
          "update toolbox_operations set status = 'queued', updated_at = now() where id = $1",
          [op.id],
        );
        await addEvent(deps.pool, op.id, "retrying", e.message, {
          retry: retryCount + 1,
          of: retryLimit,
        });
        deps.log.warn({ operationId: op.id, err: e.message }, "operation attempt failed; retrying");
        throw e;
      }
      await failOperation(deps.pool, op, e.message);
      deps.metrics?.operationFinished(op.kind, "failed", (Date.now() - started) / 1000);
      deps.log.error({ operationId: op.id, kind: op.kind, err: e.message }, "operation failed");
    }
  } finally {
    await unlockAccount(lock, op.account_id);
  }
}

/** Runs the engine call; a stack lock we know to be stale (we hold the account) is cleared once. */
async function runWithLockRecovery(
  deps: WorkerDeps,
  op: OperationRow,
  req: StackRequest,
  events: EventSink,
): Promise<void> {
  const onEvent = events.push;
  try {
    await execute(deps, op, req, events);
  } catch (err) {
    if (!(err instanceof EngineError) || err.kind !== "locked") throw err;
    onEvent({
      type: "staleLock",
      message: "stack was locked by a dead attempt; clearing the lock and retrying once",
    });
    await deps.engine.recover(req, onEvent);
    try {
      await execute(deps, op, req, events);
    } catch (again) {
      if (again instanceof EngineError && again.kind === "locked") {
        throw new EngineError(
          `stack ${req.stackName} is still locked after recovery: ${again.message}`,
          "permanent",
        );
      }
      throw again;
    }
  }
}

/** Runs the engine call, then records the result once every engine event is written. */
async function execute(deps: WorkerDeps, op: OperationRow, req: StackRequest, events: EventSink) {
  switch (op.kind) {
    case "provision": {
      const outputs = await deps.engine.up(req, events.push);
      await events.flush();
      await recordProvisioned(deps, op, req, outputs);
      return;
    }
    case "deprovision":
      await deps.engine.destroy(req, events.push);
      await events.flush();
      await finish(
        deps.pool,
        op,
        "deprovisioned",
        {},
        `update account_tool_environments set
        dtma_token_hash = null, dtma_token_previous_hash = null, tokens_ciphertext = null,
        outputs_json = null where id = $1`,
      );
      return;
    case "refresh": {
      const report = await deps.engine.refresh(req, events.push);
      await events.flush();
      await finish(deps.pool, op, undefined, report);
      return;
    }
  }
}

async function markStarting(pool: Pool, op: OperationRow): Promise<ToolboxRow> {
  const next =
    op.kind === "provision"
      ? "provisioning"
      : op.kind === "deprovision"
        ? "deprovisioning"
        : undefined;
  if (next) {
    await pool.query(
      "update account_tool_environments set status = $2, updated_at = now() where id = $1",
      [op.environment_id, next],
    );
  }
  const row = await getToolbox(pool, op.account_id);
  if (!row) throw new EngineError(`toolbox for ${op.account_id} vanished`, "permanent");
  return row;
}

async function recordProvisioned(
  deps: WorkerDeps,
  op: OperationRow,
  req: StackRequest,
  out: ToolboxOutputs,
) {
  const publicOutputs = {
    accountId: out.accountId,
    target: out.target,
    dropletId: out.dropletId,
    dropletUrn: out.dropletUrn,
    ipv4: out.ipv4,
    ipv6: out.ipv6,
    backendUrl: out.backendUrl,
  };
  const tokens = {
    dtmaToken: out.dtmaToken,
    dtmaTokenPrevious: out.dtmaTokenPrevious,
    backendApiToken: out.backendApiToken,
    agentGatewayToken: out.agentGatewayToken,
  };
  await finish(
    deps.pool,
    op,
    "awaiting_heartbeat",
    { outputs: publicOutputs },
    `update account_tool_environments set
       outputs_json = $2, target = $3, do_droplet_id = $4, do_droplet_name = $5,
       public_ip_address = $6, public_ipv6_address = $7, backend_url = $8,
       dtma_token_hash = $9, dtma_token_previous_hash = $10, tokens_ciphertext = $11,
       provisioning_error_message = null
     where id = $1`,
    [
      JSON.stringify(publicOutputs),
      out.target,
      out.dropletId && /^\d{1,18}$/.test(out.dropletId) ? out.dropletId : null,
      req.stackName,
      out.ipv4 && isIP(out.ipv4) ? out.ipv4 : null,
      out.ipv6 && isIP(out.ipv6) ? out.ipv6 : null,
      out.backendUrl ?? null,
      sha256Hex(out.dtmaToken),
      out.dtmaTokenPrevious ? sha256Hex(out.dtmaTokenPrevious) : null,
      deps.cipher.encrypt(tokens, op.account_id),
    ],
  );
}

/** Final state of a successful operation, toolbox row included, in one transaction. */
async function finish(
  pool: Pool,
  op: OperationRow,
  status: ToolboxRow["status"] | undefined,
  result: unknown,
  extraSql?: string,
  extraParams: unknown[] = [],
): Promise<void> {
  await transaction(pool, async (tx) => {
    if (extraSql) await tx.query(extraSql, [op.environment_id, ...extraParams]);
    if (status) {
      await tx.query(
        "update account_tool_environments set status = $2, updated_at = now() where id = $1",
        [op.environment_id, status],
      );
    }
    await tx.query(
      `update toolbox_operations set status = 'succeeded', result_json = $2, error_message = null,
         finished_at = now(), updated_at = now() where id = $1`,
      [op.id, JSON.stringify(result)],
    );
    await addEvent(tx, op.id, "succeeded", `${op.kind} succeeded`);
  });
}

export async function failOperation(pool: Pool, op: OperationRow, message: string): Promise<void> {
  await transaction(pool, async (tx) => {
    const status =
      op.kind === "provision"
        ? "error_provisioning"
        : op.kind === "deprovision"
          ? "error_deprovisioning"
          : undefined;
    if (status) {
      await tx.query(
        `update account_tool_environments set status = $2, provisioning_error_message = $3, updated_at = now()
         where id = $1`,
        [op.environment_id, status, message],
      );
    }
    await tx.query(
      `update toolbox_operations set status = 'failed', error_message = $2, finished_at = now(), updated_at = now()
       where id = $1 and status in ('queued','running')`,
      [op.id, message],
    );
    await addEvent(tx, op.id, "failed", message);
  });
}

/** Retries exhausted (or the job was lost on every attempt): the operation fails, visibly. */
async function giveUp(deps: WorkerDeps, operationId: string): Promise<void> {
  const op = await getOperation(deps.pool, operationId);
  if (!op || op.status === "succeeded" || op.status === "failed") return;
  await failOperation(
    deps.pool,
    op,
    op.error_message ?? "gave up after repeated failed or interrupted attempts",
  );
  deps.metrics?.operationFinished(op.kind, "failed", 0);
}

interface EventSink {
  push: (e: EngineEvent) => void;
  flush: () => Promise<void>;
}

/**
 * Engine callbacks are synchronous; events are written in order on one promise chain, so their
 * ids follow commit order and a stream reading "after id N" never skips one.
 */
function eventSink(deps: WorkerDeps, operationId: string): EventSink {
  let chain: Promise<void> = Promise.resolve();
  return {
    push: (e: EngineEvent) => {
      chain = chain
        .then(() => addEvent(deps.pool, operationId, e.type, e.message, e.data))
        .catch((err: Error) =>
          deps.log.warn({ operationId, err: err.message }, "event not recorded"),
        );
    },
    flush: () => chain,
  };
}

export async function transaction<T>(pool: Pool, fn: (tx: PoolClient) => Promise<T>): Promise<T> {
  const tx = await pool.connect();
  try {
    await tx.query("begin");
    const result = await fn(tx);
    await tx.query("commit");
    return result;
  } catch (err) {
    await tx.query("rollback").catch(() => undefined);
    throw err;
  } finally {
    tx.release();
  }
}
