import type { LifecycleStatus } from "@agentopia-toolboxes/contract";
import type { Pool, PoolClient } from "pg";

export type Queryable = Pool | PoolClient;

type ToolboxStatus = LifecycleStatus;

export const OPERATION_KINDS = [
  "provision",
  "deprovision",
  "refresh",
  "rotate_tokens",
  "upgrade",
  "rollback",
] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];
export const OPERATION_STATUSES = ["queued", "running", "succeeded", "failed"] as const;
type OperationStatus = (typeof OPERATION_STATUSES)[number];

export interface ToolboxRow {
  id: string;
  account_id: string;
  user_id: string;
  status: ToolboxStatus;
  stack_name: string;
  target: string | null;
  region_slug: string | null;
  size_slug: string | null;
  do_droplet_id: string | null;
  do_droplet_name: string | null;
  public_ip_address: string | null;
  public_ipv6_address: string | null;
  backend_url: string | null;
  outputs_json: Record<string, string | undefined> | null;
  token_generation: number;
  last_heartbeat_at: Date | null;
  dtma_last_known_version: string | null;
  dtma_health_details_json: unknown;
  provisioning_error_message: string | null;
  /** Per-account images an upgrade set (null: the service's settings). */
  dtma_image: string | null;
  backend_image: string | null;
  /** What the last successful `up` deployed, and since when. */
  deployed_dtma_image: string | null;
  deployed_backend_image: string | null;
  images_deployed_at: Date | null;
  /** `operator`: a canary an operator stack declares (registered, never provisioned here). */
  managed_by: "service" | "operator";
  operator_stack: string | null;
  operator_toolbox_id: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface OperationRow {
  id: string;
  account_id: string;
  environment_id: string;
  kind: OperationKind;
  status: OperationStatus;
  attempts: number;
  worker_id: string | null;
  error_message: string | null;
  result_json: unknown;
  requested_by: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

export async function getToolbox(
  db: Queryable,
  accountId: string,
): Promise<ToolboxRow | undefined> {
  const { rows } = await db.query<ToolboxRow>(
    "select * from account_tool_environments where account_id = $1",
    [accountId],
  );
  return rows[0];
}

/**
 * The ciphertext of a toolbox's tokens (bound to its account id), kept apart from the row its
 * owner may read (migration 8); undefined while the toolbox has none.
 */
export async function getTokensCiphertext(
  db: Queryable,
  accountId: string,
): Promise<string | undefined> {
  const { rows } = await db.query<{ tokens_ciphertext: string }>(
    `select c.tokens_ciphertext from account_tool_environment_credentials c
     join account_tool_environments e on e.id = c.environment_id where e.account_id = $1`,
    [accountId],
  );
  return rows[0]?.tokens_ciphertext;
}

export async function getOperation(db: Queryable, id: string): Promise<OperationRow | undefined> {
  const { rows } = await db.query<OperationRow>("select * from toolbox_operations where id = $1", [
    id,
  ]);
  return rows[0];
}

export async function getOpenOperation(
  db: Queryable,
  accountId: string,
): Promise<OperationRow | undefined> {
  const { rows } = await db.query<OperationRow>(
    "select * from toolbox_operations where account_id = $1 and status in ('queued','running')",
    [accountId],
  );
  return rows[0];
}

export async function addEvent(
  db: Queryable,
  operationId: string,
  type: string,
  message?: string,
  data?: unknown,
): Promise<void> {
  await db.query(
    "insert into toolbox_operation_events (operation_id, type, message, data) values ($1, $2, $3, $4)",
    [operationId, type, message ?? null, data === undefined ? null : JSON.stringify(data)],
  );
}
