import { installationStatusFor, type InstallationStatus } from "@agentopia-toolboxes/contract";
import type { Pool } from "pg";
import { z } from "zod";
import { isUuid } from "./ids";
import { sha256Hex } from "./secrets/tokenCipher";

/** The DTMA's heartbeat body (Agentopia's contract); unknown fields are kept in the details. */
export const heartbeatBody = z
  .object({
    dtma_version: z.string().max(100).optional(),
    system_status: z.record(z.string(), z.unknown()).optional(),
    tool_statuses: z
      .array(
        z
          .object({
            account_tool_instance_id: z.string().max(100).optional(),
            name: z.string().max(200).optional(),
            status: z.string().max(100).optional(),
            state: z.string().max(100).optional(),
          })
          .passthrough(),
      )
      .max(500)
      .optional(),
  })
  .passthrough();

export type HeartbeatBody = z.infer<typeof heartbeatBody>;

/** The contract's map (the DTMA reports with the same one): the Docker state decides. */
export { installationStatusFor };

export interface HeartbeatResult {
  /** False for an unknown token (nothing was written). */
  known: boolean;
  /** `account_tool_instances` rows updated. */
  updated: string[];
  /** Ids of instances on another toolbox: ignored, never updated. */
  foreign: string[];
  /** Ids no row has (or that are not ids at all): ignored. */
  unknown: string[];
}

/** Whether some toolbox holds this DTMA token now (current or previous), by its hash. */
export async function isKnownDtmaToken(pool: Pool, token: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `select 1 from account_tool_environment_credentials
     where dtma_token_hash = $1 or dtma_token_previous_hash = $1 limit 1`,
    [sha256Hex(token)],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Records a heartbeat for the toolbox whose current or previous DTMA token this is (both are
 * accepted during a rotation), and each tool status on that toolbox's `account_tool_instances`
 * row, in one statement. Instances of other toolboxes are never touched.
 */
export async function recordHeartbeat(
  pool: Pool,
  token: string,
  body: HeartbeatBody,
): Promise<HeartbeatResult> {
  const hash = sha256Hex(token);
  // One entry per id (the last wins); ids that are not UUIDs cannot name a row.
  const tools = new Map<string, InstallationStatus | null>();
  const unknown: string[] = [];
  for (const t of body.tool_statuses ?? []) {
    const id = t.account_tool_instance_id;
    if (!id) continue;
    if (!isUuid(id)) unknown.push(id);
    else tools.set(id.toLowerCase(), installationStatusFor(t) ?? null);
  }
  const { rows } = await pool.query<{ updated: string[] | null; foreign: string[] | null }>(
    `with env as (
       update account_tool_environments set
         last_heartbeat_at = now(),
         dtma_last_known_version = coalesce($2, dtma_last_known_version),
         dtma_health_details_json = $3,
         status = case when status in ('provisioning', 'awaiting_heartbeat', 'unresponsive')
                       then 'active'::account_tool_environment_status_enum else status end,
         updated_at = now()
       where id in (select environment_id from account_tool_environment_credentials
                    where dtma_token_hash = $1 or dtma_token_previous_hash = $1)
       returning id
     ), tools as (
       select t.id::uuid as id, t.status::account_tool_installation_status_enum as status
       from jsonb_to_recordset($4::jsonb) as t(id text, status text)
     ), updated as (
       update account_tool_instances i set
         status_on_toolbox = coalesce(tools.status, i.status_on_toolbox),
         last_heartbeat_from_dtma = now(),
         updated_at = now()
       from tools, env
       where i.id = tools.id and i.account_tool_environment_id = env.id
       returning i.id
     )
     select
       (select array_agg(id::text) from updated) as updated,
       (select array_agg(i.id::text) from account_tool_instances i join tools on tools.id = i.id
         where not exists (select 1 from env where env.id = i.account_tool_environment_id)) as foreign
     from env`,
    [
      hash,
      body.dtma_version ?? null,
      JSON.stringify(body),
      JSON.stringify([...tools].map(([id, status]) => ({ id, status }))),
    ],
  );
  const row = rows[0];
  if (!row) return { known: false, updated: [], foreign: [], unknown: [] };
  const updated = row.updated ?? [];
  const foreign = row.foreign ?? [];
  const seen = new Set([...updated, ...foreign]);
  for (const id of tools.keys()) if (!seen.has(id)) unknown.push(id);
  return { known: true, updated, foreign, unknown };
}

/**
 * Marks toolboxes unresponsive whose last heartbeat (or, never having sent one, whose
 * provisioning) is older than the timeout. Returns how many changed.
 */
export async function sweepUnresponsive(pool: Pool, timeoutSeconds: number): Promise<number> {
  const { rowCount } = await pool.query(
    `update account_tool_environments set status = 'unresponsive', updated_at = now()
     where (status = 'active' and last_heartbeat_at < now() - make_interval(secs => $1))
        or (status = 'awaiting_heartbeat' and coalesce(last_heartbeat_at, updated_at) < now() - make_interval(secs => $1))`,
    [timeoutSeconds],
  );
  return rowCount ?? 0;
}
