/**
 * Running one attempt at an operation: the engine call its kind asks for (after recovering an
 * interrupted stack, clearing a stale lock once), then its outcome: recorded, retried or failed.
 */
import type { Logger } from "pino";
import type { Pool, PoolClient } from "pg";
import type { Metrics } from "../metrics";
import type { StackRequest, ToolboxEngine } from "../engine/types";
import { EngineError } from "../engine/types";
import type { SecretScrubber } from "../secrets/scrubber";
import type { TokenCipher } from "../secrets/tokenCipher";
import { stackRequestFor, type StackSettings } from "../stackRequest";
import { withAccountClaim, type StartedOperation } from "./accountClaim";
import { eventSink, type EventSink } from "./eventSink";
import type { OperationJob } from "./queue";
import {
  failOperation,
  recordDeprovisioned,
  recordProvisioned,
  recordRefreshed,
  recordRetrying,
} from "./results";

/** What an attempt needs of the service. */
export interface OperationDeps {
  /** The worker's own connections: an attempt holds one for its whole length. */
  pool: Pool;
  engine: ToolboxEngine;
  cipher: TokenCipher;
  /** Knows every secret of the service; each attempt adds its toolbox's tokens. */
  scrubber: SecretScrubber;
  stackSettings: StackSettings;
  log: Logger;
  metrics?: Metrics;
  workerId: string;
}

/**
 * One attempt at one operation. Returns normally when the operation reached a final state
 * (succeeded or permanently failed); throws to have pg-boss retry it with backoff. It runs under
 * the account's claim (accountClaim.ts). `engineDone` is called once the engine has finished (the
 * worker slot may take the next job while the result is being recorded).
 */
export async function runOperation(
  deps: OperationDeps,
  job: OperationJob,
  retryCount: number,
  retryLimit: number,
  engineDone: () => void = () => undefined,
): Promise<void> {
  const started = Date.now();
  await withAccountClaim(deps.pool, deps.log, job, deps.workerId, async (db, attempt) => {
    const { op, row, tokensCiphertext, interrupted } = attempt;
    const scrubber = attemptScrubber(deps, op.account_id, tokensCiphertext);
    const events = eventSink(deps.log, db, op.id, scrubber);
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
      await runWithLockRecovery({ deps, db, op, req, events, engineDone });
      deps.metrics?.operationFinished(op.kind, "succeeded", (Date.now() - started) / 1000);
    } catch (err) {
      engineDone();
      await events.flush();
      const e = attemptFailure(err, scrubber);
      if (e.kind === "transient" && retryCount < retryLimit) {
        await recordRetrying(db, op, e.message, { retry: retryCount + 1, of: retryLimit });
        deps.log.warn({ operationId: op.id, err: e.message }, "operation attempt failed; retrying");
        throw e;
      }
      await failOperation(db, op, e.message);
      deps.metrics?.operationFinished(op.kind, "failed", (Date.now() - started) / 1000);
      deps.log.error({ operationId: op.id, kind: op.kind, err: e.message }, "operation failed");
    }
  });
}

/**
 * The attempt's scrubber: the service's secrets and the toolbox's own tokens (known once it was
 * provisioned; a ciphertext that no longer decrypts adds none).
 */
function attemptScrubber(
  deps: OperationDeps,
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

/** One engine call of an attempt: what it runs on, and where its events and result go. */
interface EngineRun {
  deps: OperationDeps;
  db: PoolClient;
  op: StartedOperation;
  req: StackRequest;
  events: EventSink;
  engineDone: () => void;
}

/** Runs the engine call; a stack lock we know to be stale (we hold the account) is cleared once. */
async function runWithLockRecovery(run: EngineRun): Promise<void> {
  const onEvent = run.events.push;
  try {
    await execute(run);
  } catch (err) {
    if (!(err instanceof EngineError) || err.kind !== "locked") throw err;
    onEvent({
      type: "staleLock",
      message: "stack was locked by a dead attempt; clearing the lock and retrying once",
    });
    await run.deps.engine.recover(run.req, onEvent);
    try {
      await execute(run);
    } catch (again) {
      if (again instanceof EngineError && again.kind === "locked") {
        throw new EngineError(
          `stack ${run.req.stackName} is still locked after recovery: ${again.message}`,
          "permanent",
        );
      }
      throw again;
    }
  }
}

/** Runs the engine call, then records the result (with the engine's last events) in one statement. */
async function execute({ deps, db, op, req, events, engineDone }: EngineRun) {
  switch (op.kind) {
    // A fleet upgrade's step and its rollback: an `up` with the account's own images
    // (stackRequest.ts).
    case "provision":
    case "rotate_tokens":
    case "upgrade":
    case "rollback": {
      const outputs = await deps.engine.up(req, events.push);
      engineDone();
      await recordProvisioned(db, deps.cipher, op, req, outputs, await events.drain());
      return;
    }
    case "deprovision":
      await deps.engine.destroy(req, events.push);
      engineDone();
      await recordDeprovisioned(db, op, await events.drain());
      return;
    case "refresh": {
      const report = await deps.engine.refresh(req, events.push);
      engineDone();
      await recordRefreshed(db, op, report, await events.drain());
      return;
    }
  }
}
