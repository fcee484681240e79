import type { Pool } from "pg";
import { z } from "zod";
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
          })
          .passthrough(),
      )
      .max(500)
      .optional(),
  })
  .passthrough();

export type HeartbeatBody = z.infer<typeof heartbeatBody>;

/**
 * Records a heartbeat for the toolbox whose current or previous DTMA token this is (both are
 * accepted during a rotation). Returns false for an unknown token.
 */
export async function recordHeartbeat(
  pool: Pool,
  token: string,
  body: HeartbeatBody,
): Promise<boolean> {
  const hash = sha256Hex(token);
  const { rowCount } = await pool.query(
    `update account_tool_environments set
       last_heartbeat_at = now(),
       dtma_last_known_version = coalesce($2, dtma_last_known_version),
       dtma_health_details_json = $3,
       status = case when status in ('provisioning', 'awaiting_heartbeat', 'unresponsive')
                     then 'active'::account_tool_environment_status_enum else status end,
       updated_at = now()
     where dtma_token_hash = $1 or dtma_token_previous_hash = $1`,
    [hash, body.dtma_version ?? null, JSON.stringify(body)],
  );
  return (rowCount ?? 0) > 0;
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
