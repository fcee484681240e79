/**
 * Claiming an operation for one attempt: the account's session advisory lock (the protocol) and
 * the claim (one statement), on the connection the attempt keeps throughout.
 */
import type { Logger } from "pino";
import type { Pool, PoolClient } from "pg";
import type { OperationRow, ToolboxRow } from "../db/rows";
import type { OperationJob } from "./queue";

/** What an attempt needs of its operation row. */
export type StartedOperation = Pick<OperationRow, "id" | "account_id" | "environment_id" | "kind">;

export interface Attempt {
  op: StartedOperation;
  row: ToolboxRow | undefined;
  /** The toolbox's tokens, encrypted (absent until it was provisioned). */
  tokensCiphertext: string | null;
  interrupted: boolean;
}

/**
 * Claims the job's operation and runs `attempt` on the claiming connection, which holds the
 * account's session advisory lock until the attempt is over, so that a re-issued job can never
 * overlap a still-running attempt on any machine (the lock goes with the session when a worker
 * dies). Throws when another worker holds the account (pg-boss retries the job); runs nothing when
 * the operation is gone or already final.
 */
export async function withAccountClaim(
  pool: Pool,
  log: Logger,
  job: OperationJob,
  workerId: string,
  attempt: (db: PoolClient, claimed: Attempt) => Promise<void>,
): Promise<void> {
  const db = await pool.connect();
  // A checked-out client's errors are not the pool's to handle: without a listener a connection
  // lost while the engine runs (database restart or shutdown) would crash the process instead of
  // failing this attempt's next query.
  const lost = (err: Error) =>
    log.warn({ operationId: job.operationId, err: err.message }, "operation connection lost");
  db.on("error", lost);
  let locked = false;
  try {
    let claim = await lockAndStart(db, job, workerId, false);
    if (!claim.locked) {
      if (!(await waitForAccount(db, job.accountId))) {
        throw new Error(`account ${job.accountId} is busy on another worker`);
      }
      locked = true;
      claim = await lockAndStart(db, job, workerId, true);
    }
    locked = true;
    if (claim.attempt) await attempt(db, claim.attempt);
  } finally {
    // Not awaited: the outcome is committed, and a worker that picks up this account's next
    // operation meanwhile waits for the lock. A failed unlock closes the session (and the lock).
    if (locked) void unlockAccount(db, job.accountId).finally(() => db.off("error", lost));
    else {
      db.off("error", lost);
      db.release();
    }
  }
}

/**
 * Runs `fn` holding the account's advisory lock, waiting for it as long as it takes: while an
 * attempt holds the account (alive, even when pg-boss gave up its claim), its outcome is the
 * operation's, and it is over when the lock is free (or its worker died, which frees it).
 */
export async function whenAccountIsFree(
  pool: Pool,
  accountId: string,
  fn: (db: PoolClient) => Promise<void>,
): Promise<void> {
  const db = await pool.connect();
  try {
    await db.query("select pg_advisory_lock(hashtextextended($1, 7))", [accountId]);
  } catch (err) {
    db.release(true);
    throw err;
  }
  try {
    await fn(db);
  } finally {
    await unlockAccount(db, accountId);
  }
}

/**
 * Waits (up to 3 s) for the account's advisory lock. A lock still held is usually the account's
 * previous operation releasing it (its result is committed, its unlock follows), so a short wait
 * beats failing the job into a backoff. Returns false when it is really busy.
 */
async function waitForAccount(client: PoolClient, accountId: string): Promise<boolean> {
  await client.query("set lock_timeout = '3s'");
  const got = await client
    .query("select pg_advisory_lock(hashtextextended($1, 7))", [accountId])
    .then(
      () => true,
      (err: { code?: string }) => {
        if (err.code === "55P03") return false; // lock_not_available
        throw err;
      },
    );
  await client.query("reset lock_timeout");
  return got;
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
 * Takes the account's session advisory lock (unless `alreadyLocked`) and claims the operation, in
 * one statement: the operation becomes `running`, the toolbox `provisioning`/`deprovisioning`, an
 * `attempt` event is written. Nothing changes when the lock is taken elsewhere (`locked: false`);
 * `attempt` is absent when the operation is gone or already final.
 */
async function lockAndStart(
  db: PoolClient,
  job: OperationJob,
  workerId: string,
  alreadyLocked: boolean,
): Promise<{ locked: boolean; attempt?: Attempt }> {
  const { rows } = await db.query<
    ToolboxRow & {
      locked: boolean;
      op_id: string | null;
      op_kind: OperationRow["kind"];
      op_environment_id: string;
      op_account_id: string;
      op_previous_status: string;
      env_found: boolean;
      cred_tokens_ciphertext: string | null;
    }
  >(
    `with lock as (
       select ${alreadyLocked ? "true" : "pg_try_advisory_lock(hashtextextended($3, 7))"} as ok
     ), prev as (
       select o.id, o.status from toolbox_operations o, lock
       where lock.ok and o.id = $1 and o.status in ('queued', 'running') for update of o
     ), op as (
       update toolbox_operations o set status = 'running', attempts = o.attempts + 1,
         worker_id = $2, started_at = coalesce(o.started_at, now()), updated_at = now()
       from prev where o.id = prev.id
       returning o.id, o.kind, o.environment_id, o.account_id, o.attempts, prev.status as previous_status
     ), env as (
       update account_tool_environments e set
         status = case op.kind
           when 'provision' then 'provisioning'::account_tool_environment_status_enum
           when 'deprovision' then 'deprovisioning'::account_tool_environment_status_enum
           else e.status end,
         updated_at = now()
       from op where e.id = op.environment_id
       returning e.*
     ), ev as (
       insert into toolbox_operation_events (operation_id, type, message)
       select id, 'attempt', 'attempt ' || attempts || ' on ' || $2 from op
     )
     select env.*, lock.ok as locked, op.id as op_id, op.kind as op_kind,
       op.environment_id as op_environment_id, op.account_id as op_account_id,
       op.previous_status as op_previous_status, env.id is not null as env_found,
       cred.tokens_ciphertext as cred_tokens_ciphertext
     from lock left join op on true left join env on true
       left join account_tool_environment_credentials cred on cred.environment_id = env.id`,
    alreadyLocked ? [job.operationId, workerId] : [job.operationId, workerId, job.accountId],
  );
  const r = rows[0];
  if (!r?.locked) return { locked: false };
  if (!r.op_id) return { locked: true };
  const op: StartedOperation = {
    id: r.op_id,
    kind: r.op_kind,
    environment_id: r.op_environment_id,
    account_id: r.op_account_id,
  };
  // A 'running' operation at pick-up means the previous attempt's worker died mid-run.
  return {
    locked: true,
    attempt: {
      op,
      row: r.env_found ? r : undefined,
      tokensCiphertext: r.cred_tokens_ciphertext,
      interrupted: r.op_previous_status === "running",
    },
  };
}
