import { isIP } from "node:net";
import { LOCAL_IMAGES } from "@agentopia-toolboxes/contract";
import type { Logger } from "pino";
import { Pool, type PoolClient } from "pg";
import type { PgBoss } from "pg-boss";
import type { Metrics } from "../metrics";
import {
  addEvent,
  getOperation,
  type OperationRow,
  type Queryable,
  type ToolboxRow,
} from "../db/rows";
import type { EngineEvent, StackRequest, ToolboxEngine, ToolboxOutputs } from "../engine/types";
import { EngineError } from "../engine/types";
import type { SecretScrubber } from "../secrets/scrubber";
import { sha256Hex, type TokenCipher } from "../secrets/tokenCipher";
import { stackRequestFor, type StackSettings } from "../stackRequest";
import { JobLoop } from "./jobLoop";
import {
  DEAD_LETTER_QUEUE,
  OPERATIONS_CHANNEL,
  OPERATIONS_QUEUE,
  type OperationJob,
} from "./queue";

export interface WorkerDeps {
  pool: Pool;
  boss: PgBoss;
  engine: ToolboxEngine;
  cipher: TokenCipher;
  /** Knows every secret of the service; each attempt adds its toolbox's tokens. */
  scrubber: SecretScrubber;
  stackSettings: StackSettings;
  log: Logger;
  metrics?: Metrics;
  workerId: string;
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

/** What an attempt needs of its operation row. */
export type StartedOperation = Pick<OperationRow, "id" | "account_id" | "environment_id" | "kind">;

interface Attempt {
  op: StartedOperation;
  row: ToolboxRow | undefined;
  /** The toolbox's tokens, encrypted (absent until it was provisioned). */
  tokensCiphertext: string | null;
  interrupted: boolean;
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

/**
 * One attempt at one operation. Returns normally when the operation reached a final state
 * (succeeded or permanently failed); throws to have pg-boss retry it with backoff. It holds one
 * connection throughout, with the account's session advisory lock, so that a re-issued job can
 * never overlap a still-running attempt on any machine. `engineDone` is called once the engine
 * has finished (the worker slot may take the next job while the result is being recorded).
 */
export async function runOperation(
  deps: WorkerDeps,
  job: OperationJob,
  retryCount: number,
  retryLimit: number,
  engineDone: () => void = () => undefined,
): Promise<void> {
  const db = await deps.pool.connect();
  // A checked-out client's errors are not the pool's to handle: without a listener a connection
  // lost while the engine runs (database restart or shutdown) would crash the process instead of
  // failing this attempt's next query.
  const lost = (err: Error) =>
    deps.log.warn({ operationId: job.operationId, err: err.message }, "operation connection lost");
  db.on("error", lost);
  let locked = false;
  const started = Date.now();
  try {
    let claim = await lockAndStart(db, job, deps.workerId, false);
    if (!claim.locked) {
      if (!(await waitForAccount(db, job.accountId))) {
        throw new Error(`account ${job.accountId} is busy on another worker`);
      }
      locked = true;
      claim = await lockAndStart(db, job, deps.workerId, true);
    }
    locked = true;
    if (!claim.attempt) return;
    const { op, row, tokensCiphertext, interrupted } = claim.attempt;
    const scrubber = attemptScrubber(deps, op.account_id, tokensCiphertext);
    const events = eventSink(deps, db, op.id, scrubber);
    try {
      if (!row) throw new EngineError(`toolbox for ${op.account_id} vanished`, "permanent");
      const req = stackRequestFor(deps.stackSettings, row);
      if (interrupted) {
        events.push({
          type: "resumed",
          message: "previous attempt was interrupted; recovering the stack",
        });
        await deps.engine.recover(req, events.push);
      }
      await runWithLockRecovery(deps, db, op, req, events, engineDone);
      deps.metrics?.operationFinished(op.kind, "succeeded", (Date.now() - started) / 1000);
    } catch (err) {
      engineDone();
      await events.flush();
      const e = attemptFailure(err, scrubber);
      if (e.kind === "transient" && retryCount < retryLimit) {
        await db.query(
          "update toolbox_operations set status = 'queued', updated_at = now() where id = $1",
          [op.id],
        );
        await addEvent(db, op.id, "retrying", e.message, {
          retry: retryCount + 1,
          of: retryLimit,
        });
        deps.log.warn({ operationId: op.id, err: e.message }, "operation attempt failed; retrying");
        throw e;
      }
      await failOperation(db, op, e.message);
      deps.metrics?.operationFinished(op.kind, "failed", (Date.now() - started) / 1000);
      deps.log.error({ operationId: op.id, kind: op.kind, err: e.message }, "operation failed");
    }
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
 * The attempt's scrubber: the service's secrets and the toolbox's own tokens (known once it was
 * provisioned; a ciphertext that no longer decrypts adds none).
 */
function attemptScrubber(
  deps: WorkerDeps,
  accountId: string,
  tokensCiphertext: string | null,
): SecretScrubber {
  if (!tokensCiphertext) return deps.scrubber;
  try {
    return deps.scrubber.with(Object.values(deps.cipher.decrypt(tokensCiphertext, accountId)));
  } catch {
    deps.log.warn({ accountId }, "stored tokens do not decrypt; not scrubbing them");
    return deps.scrubber;
  }
}

/**
 * Every failure of an attempt becomes the text that is stored, streamed, logged and handed to
 * pg-boss here, and only here: scrubbed of every secret first, then cut to its useful head (CLI
 * errors embed the full output). Errors that are not the engine's are retried as transient.
 */
function attemptFailure(err: unknown, scrubber: SecretScrubber): EngineError {
  const kind = err instanceof EngineError ? err.kind : "transient";
  const message = err instanceof Error ? err.message : String(err);
  return new EngineError(firstLines(scrubber.text(message)), kind);
}

function firstLines(text: string): string {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(0, 12)
    .join("\n")
    .slice(0, 2000);
}

/** Runs the engine call; a stack lock we know to be stale (we hold the account) is cleared once. */
async function runWithLockRecovery(
  deps: WorkerDeps,
  db: PoolClient,
  op: StartedOperation,
  req: StackRequest,
  events: EventSink,
  engineDone: () => void,
): Promise<void> {
  const onEvent = events.push;
  try {
    await execute(deps, db, op, req, events, engineDone);
  } catch (err) {
    if (!(err instanceof EngineError) || err.kind !== "locked") throw err;
    onEvent({
      type: "staleLock",
      message: "stack was locked by a dead attempt; clearing the lock and retrying once",
    });
    await deps.engine.recover(req, onEvent);
    try {
      await execute(deps, db, op, req, events, engineDone);
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

/** Runs the engine call, then records the result (with the engine's last events) in one statement. */
async function execute(
  deps: WorkerDeps,
  db: PoolClient,
  op: StartedOperation,
  req: StackRequest,
  events: EventSink,
  engineDone: () => void,
) {
  switch (op.kind) {
    // A fleet upgrade's step and its rollback: an `up` with the account's own images (stackConfig).
    case "provision":
    case "rotate_tokens":
    case "upgrade":
    case "rollback": {
      const outputs = await deps.engine.up(req, events.push);
      engineDone();
      await recordProvisioned(deps, db, op, req, outputs, await events.drain());
      return;
    }
    case "deprovision":
      await deps.engine.destroy(req, events.push);
      engineDone();
      await finish(db, op, "deprovisioned", {}, await events.drain(), { outputs_json: null }, null);
      return;
    case "refresh": {
      const report = await deps.engine.refresh(req, events.push);
      engineDone();
      await finish(db, op, undefined, report, await events.drain());
      return;
    }
  }
}

async function recordProvisioned(
  deps: WorkerDeps,
  db: PoolClient,
  op: StartedOperation,
  req: StackRequest,
  out: ToolboxOutputs,
  pending: EngineEvent[],
) {
  const publicOutputs = {
    dropletId: out.dropletId,
    dropletName: out.dropletName,
    dropletUrn: out.dropletUrn,
    ipv4: out.ipv4,
    ipv6: out.ipv6,
    backendUrl: out.backendUrl,
    backendCaCertPem: out.backendCaCertPem,
    backendCaSha256: out.backendCaSha256,
    backendCertNotAfter: out.backendCertNotAfter,
  };
  const tokens = {
    dtmaToken: out.dtmaToken,
    dtmaTokenPrevious: out.dtmaTokenPrevious,
    backendApiToken: out.backendApiToken,
    agentGatewayToken: out.agentGatewayToken,
  };
  // A rotation keeps the toolbox's status: its DTMA beats on with the new token.
  const status = op.kind === "provision" ? "awaiting_heartbeat" : undefined;
  await finish(
    db,
    op,
    status,
    { outputs: publicOutputs },
    pending,
    {
      outputs_json: JSON.stringify(publicOutputs),
      target: req.config.target,
      do_droplet_id: out.dropletId && /^\d{1,18}$/.test(out.dropletId) ? out.dropletId : null,
      do_droplet_name: out.dropletName ?? null,
      public_ip_address: out.ipv4 && isIP(out.ipv4) ? out.ipv4 : null,
      public_ipv6_address: out.ipv6 && isIP(out.ipv6) ? out.ipv6 : null,
      backend_url: out.backendUrl ?? null,
      provisioning_error_message: null,
      // What now runs (a trigger keeps the history: which images, since when).
      deployed_dtma_image: req.config.dtmaImage ?? localImage(req, "dtma"),
      deployed_backend_image: req.config.backendImage ?? localImage(req, "backend"),
    },
    {
      dtma_token_hash: sha256Hex(out.dtmaToken),
      dtma_token_previous_hash: out.dtmaTokenPrevious ? sha256Hex(out.dtmaTokenPrevious) : null,
      tokens_ciphertext: deps.cipher.encrypt(tokens, op.account_id),
    },
  );
}

/** The local target's default image (the program's), where the service sets none. */
function localImage(req: StackRequest, role: keyof typeof LOCAL_IMAGES): string | null {
  return req.config.target === "local" ? LOCAL_IMAGES[role] : null;
}

/** A toolbox's token material, kept apart from the row its owner reads (migration 8). */
interface Credentials {
  dtma_token_hash: string;
  dtma_token_previous_hash: string | null;
  tokens_ciphertext: string;
}

/**
 * Final state of a successful operation in one statement (so one round trip and one commit):
 * toolbox columns and status, its credentials (replaced, or removed when null), the operation's
 * result, the engine's last events and `succeeded`.
 */
async function finish(
  db: Queryable,
  op: StartedOperation,
  status: ToolboxRow["status"] | undefined,
  result: unknown,
  pending: EngineEvent[],
  columns: Record<string, string | null> = {},
  credentials?: Credentials | null,
): Promise<void> {
  const events = [...pending, { type: "succeeded", message: `${op.kind} succeeded` }];
  const params: unknown[] = [op.environment_id, op.id, JSON.stringify(result), eventsJson(events)];
  const sets = Object.entries(columns).map(([column, value]) => {
    params.push(value);
    return `${column} = $${params.length}`;
  });
  if (status) {
    params.push(status);
    sets.push(`status = $${params.length}`);
  }
  const ctes: string[] = [];
  if (sets.length > 0) {
    ctes.push(`env as (update account_tool_environments set ${sets.join(", ")}, updated_at = now()
      where id = $1)`);
  }
  if (credentials === null) {
    ctes.push(
      "cred as (delete from account_tool_environment_credentials where environment_id = $1)",
    );
  } else if (credentials) {
    params.push(
      credentials.dtma_token_hash,
      credentials.dtma_token_previous_hash,
      credentials.tokens_ciphertext,
    );
    const n = params.length;
    ctes.push(`cred as (
      insert into account_tool_environment_credentials
        (environment_id, dtma_token_hash, dtma_token_previous_hash, tokens_ciphertext)
      values ($1, $${n - 2}, $${n - 1}, $${n})
      on conflict (environment_id) do update set dtma_token_hash = excluded.dtma_token_hash,
        dtma_token_previous_hash = excluded.dtma_token_previous_hash,
        tokens_ciphertext = excluded.tokens_ciphertext, updated_at = now())`);
  }
  await db.query(
    `with ${ctes.map((c) => `${c},`).join("\n")} op as (
       update toolbox_operations set status = 'succeeded', result_json = $3, error_message = null,
         finished_at = now(), updated_at = now() where id = $2 and environment_id = $1::uuid
     )
     ${insertEventsSql("$2", "$4")}`,
    params,
  );
}

/** The operation failed: toolbox `error_*` with the message, operation `failed`, in one statement. */
export async function failOperation(
  db: Queryable,
  op: Pick<OperationRow, "id" | "kind" | "environment_id">,
  message: string,
): Promise<void> {
  const status =
    op.kind === "provision"
      ? "error_provisioning"
      : op.kind === "deprovision"
        ? "error_deprovisioning"
        : null;
  await db.query(
    `with env as (
       update account_tool_environments set status = $3::text::account_tool_environment_status_enum,
         provisioning_error_message = $4, updated_at = now()
       where id = $2 and $3::text is not null
     ), op as (
       update toolbox_operations set status = 'failed', error_message = $4, finished_at = now(),
         updated_at = now()
       where id = $1 and status in ('queued', 'running')
     )
     insert into toolbox_operation_events (operation_id, type, message) values ($1, 'failed', $4)`,
    [op.id, op.environment_id, status, message],
  );
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

function eventsJson(events: EngineEvent[]): string {
  return JSON.stringify(
    events.map((e) => ({ type: e.type, message: e.message ?? null, data: e.data ?? null })),
  );
}

/** Inserts a JSON array of events in array order (so their ids follow it), as one statement. */
function insertEventsSql(operationParam: string, eventsParam: string): string {
  return `insert into toolbox_operation_events (operation_id, type, message, data)
     select ${operationParam}::uuid, t.type, t.message, t.data
     from rows from (jsonb_to_recordset(${eventsParam}::jsonb) as (type text, message text, data jsonb))
       with ordinality as t(type, message, data, ord)
     order by t.ord`;
}

interface EventSink {
  push: (e: EngineEvent) => void;
  /** Writes everything pushed so far. */
  flush: () => Promise<void>;
  /** Waits for writes in flight and hands back what is not written yet (for the final statement). */
  drain: () => Promise<EngineEvent[]>;
}

/** Engine events reach the database (and the event stream) at most this long after they happen. */
const EVENT_WRITE_DELAY_MS = 250;

/**
 * Engine callbacks are synchronous; events are collected for up to EVENT_WRITE_DELAY_MS and written
 * as one multi-row insert, one write at a time, so their ids follow commit order and a stream
 * reading "after id N" never skips one. What is still collected when the engine call ends goes
 * into the operation's final statement.
 */
function eventSink(
  deps: WorkerDeps,
  db: Queryable,
  operationId: string,
  scrubber: SecretScrubber,
): EventSink {
  let pending: EngineEvent[] = [];
  let writing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const write = () => {
    timer = undefined;
    if (writing || pending.length === 0) return;
    const batch = pending;
    pending = [];
    writing = db
      .query(insertEventsSql("$1", "$2"), [operationId, eventsJson(batch)])
      .then(
        () => undefined,
        (err: Error) => deps.log.warn({ operationId, err: err.message }, "events not recorded"),
      )
      .finally(() => {
        writing = undefined;
        if (pending.length > 0) schedule();
      });
  };
  const schedule = () => {
    timer ??= setTimeout(write, EVENT_WRITE_DELAY_MS);
  };
  const settled = async () => {
    clearTimeout(timer);
    timer = undefined;
    while (writing) await writing;
  };
  return {
    push: (e: EngineEvent) => {
      pending.push({
        type: e.type,
        message: e.message && scrubber.text(e.message),
        data: scrubber.value(e.data),
      });
      schedule();
    },
    flush: async () => {
      await settled();
      write();
      await settled();
    },
    drain: async () => {
      await settled();
      const rest = pending;
      pending = [];
      return rest;
    },
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
