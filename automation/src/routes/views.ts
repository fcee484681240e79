import type { OperationRow, ToolboxRow } from "../db/rows";

/** A text output the stack exported (stored with the row), or null. */
function outputText(row: ToolboxRow, key: string): string | null {
  const v = row.outputs_json?.[key];
  return typeof v === "string" ? v : null;
}

/** Public view of a toolbox: outputs without secrets, last heartbeat and a health verdict. */
export function toolboxView(row: ToolboxRow, heartbeatTimeoutSeconds: number) {
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

export function operationView(op: OperationRow) {
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
