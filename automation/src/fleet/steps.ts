/**
 * A fleet upgrade's steps are operations of their accounts: an `upgrade` or `rollback` row in
 * toolbox_operations and its job on the operations queue, written in the caller's transaction
 * together with the record's images (the account stack reads them: stackRequest.ts). The
 * one-open-operation-per-account index and the worker's account lock keep a step from ever
 * overlapping an operation of the account's own.
 */
import type { PoolClient } from "pg";
import type { PgBoss } from "pg-boss";
import { OPERATIONS_CHANNEL, OPERATIONS_QUEUE } from "../queue/queue";

export interface StepInput {
  account_id: string;
  environment_id: string;
  dtma_image: string | null;
  backend_image: string | null;
}

/**
 * Sets each record's images and queues its operation (one statement each for the records, the
 * operations and their first events, one pg-boss insert for the jobs). The caller holds the
 * records' row locks and has checked that none has an open operation. Returns the operation id
 * of each account.
 */
export async function queueSteps(
  tx: PoolClient,
  boss: PgBoss,
  kind: "upgrade" | "rollback",
  steps: StepInput[],
  requestedBy: string,
): Promise<Map<string, string>> {
  if (steps.length === 0) return new Map();
  const json = JSON.stringify(steps);
  await tx.query(
    `update account_tool_environments e set dtma_image = s.dtma_image,
       backend_image = s.backend_image, updated_at = now()
     from jsonb_to_recordset($1::jsonb) as s(environment_id uuid, dtma_image text, backend_image text)
     where e.id = s.environment_id`,
    [json],
  );
  const { rows } = await tx.query<{ id: string; account_id: string }>(
    `with ops as (
       insert into toolbox_operations (account_id, environment_id, kind, requested_by)
       select s.account_id, s.environment_id, $2, $3
       from jsonb_to_recordset($1::jsonb) as s(account_id uuid, environment_id uuid)
       returning id, account_id
     ), ev as (
       insert into toolbox_operation_events (operation_id, type, message)
       select id, 'queued', $2 || ' requested by ' || $3 from ops
     )
     select id::text, account_id::text from ops`,
    [json, kind, requestedBy],
  );
  await boss.insert(
    OPERATIONS_QUEUE,
    rows.map((r) => ({ data: { operationId: r.id, accountId: r.account_id } })),
    { db: { executeSql: (text, values) => tx.query(text, values) } },
  );
  await tx.query("select pg_notify($1, '')", [OPERATIONS_CHANNEL]);
  return new Map(rows.map((r) => [r.account_id, r.id]));
}
