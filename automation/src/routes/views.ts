import { LIFECYCLE_STATUSES } from "@agentopia-toolboxes/contract";
import { z } from "zod";
import {
  OPERATION_KINDS,
  OPERATION_STATUSES,
  type OperationRow,
  type ToolboxRow,
} from "../db/rows";

// What the toolbox and operation routes answer. The views are typed by these schemas, so what
// they return is what the OpenAPI document says (dates go out as ISO 8601 strings).

const text = z.string().nullable();
const time = z.date();

export const toolboxViewSchema = z.object({
  account_id: z.string(),
  user_id: z.string(),
  status: z.enum(LIFECYCLE_STATUSES),
  stack_name: z.string(),
  target: text,
  region: text,
  size: text,
  droplet_id: text,
  droplet_name: text,
  ipv4: text,
  ipv6: text,
  backend_url: text.describe("the toolbox gateway"),
  backend_ca_certificate: text.describe(
    "PEM of the CA that signed the backend's certificate: pin it",
  ),
  backend_ca_sha256: text,
  backend_certificate_expires_at: text,
  outputs: z
    .record(z.string(), z.string().optional())
    .nullable()
    .describe("the stack's outputs, without its secrets"),
  last_heartbeat_at: time.nullable(),
  health: z.enum(["healthy", "stale", "unresponsive", "unknown"]),
  dtma_version: text,
  health_details: z.unknown().describe("the DTMA's last heartbeat"),
  error_message: text,
  created_at: time,
  updated_at: time,
});
export type ToolboxView = z.infer<typeof toolboxViewSchema>;

export const operationViewSchema = z.object({
  id: z.string(),
  account_id: z.string(),
  kind: z.enum(OPERATION_KINDS),
  status: z.enum(OPERATION_STATUSES),
  attempts: z.number().int(),
  error_message: text,
  result: z.unknown().describe("a refresh's drift report; null for the other kinds"),
  requested_by: z.string(),
  created_at: time,
  started_at: time.nullable(),
  finished_at: time.nullable(),
  events_url: z.string().describe("its server-sent events"),
});
export type OperationView = z.infer<typeof operationViewSchema>;

/** A text output the stack exported (stored with the row), or null. */
function outputText(row: ToolboxRow, key: string): string | null {
  const v = row.outputs_json?.[key];
  return typeof v === "string" ? v : null;
}

/** Public view of a toolbox: outputs without secrets, last heartbeat and a health verdict. */
export function toolboxView(row: ToolboxRow, heartbeatTimeoutSeconds: number): ToolboxView {
  const fresh =
    row.last_heartbeat_at !== null &&
    Date.now() - row.last_heartbeat_at.getTime() <= heartbeatTimeoutSeconds * 1000;
  const health =
    row.status === "active"
      ? fresh
        ? "healthy"
        : "stale"
      : row.status === "unresponsive"
        ? "unresponsive"
        : "unknown";
  return {
    account_id: row.account_id,
    user_id: row.user_id,
    status: row.status,
    stack_name: row.stack_name,
    target: row.target,
    region: row.region_slug,
    size: row.size_slug,
    droplet_id: row.do_droplet_id,
    droplet_name: row.do_droplet_name,
    ipv4: row.public_ip_address,
    ipv6: row.public_ipv6_address,
    backend_url: row.backend_url,
    // How to verify the backend: the CA that signed its certificate (pin it) and when it expires.
    backend_ca_certificate: outputText(row, "backendCaCertPem"),
    backend_ca_sha256: outputText(row, "backendCaSha256"),
    backend_certificate_expires_at: outputText(row, "backendCertNotAfter"),
    outputs: row.outputs_json,
    last_heartbeat_at: row.last_heartbeat_at,
    health,
    dtma_version: row.dtma_last_known_version,
    health_details: row.dtma_health_details_json,
    error_message: row.provisioning_error_message,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

export function operationView(op: OperationRow): OperationView {
  return {
    id: op.id,
    account_id: op.account_id,
    kind: op.kind,
    status: op.status,
    attempts: op.attempts,
    error_message: op.error_message,
    result: op.result_json,
    requested_by: op.requested_by,
    created_at: op.created_at,
    started_at: op.started_at,
    finished_at: op.finished_at,
    events_url: `/v1/operations/${op.id}/events`,
  };
}

/** The answer of the toolbox routes: the toolbox, and the operation queued for it, if any. */
export const toolboxAnswer = z.object({
  toolbox: toolboxViewSchema,
  operation: operationViewSchema.optional(),
});
/** The answer of `GET /v1/operations/{id}`. */
export const operationAnswer = z.object({ operation: operationViewSchema });
