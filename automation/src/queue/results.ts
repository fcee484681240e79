/** Recording an attempt's outcome: the operation's final state, the toolbox row and credentials. */
import { isIP } from "node:net";
import { LOCAL_IMAGES } from "@agentopia-toolboxes/contract";
import { addEvent, type OperationRow, type Queryable, type ToolboxRow } from "../db/rows";
import type { DriftReport, EngineEvent, StackRequest, ToolboxOutputs } from "../engine/types";
import { sha256Hex, type TokenCipher } from "../secrets/tokenCipher";
import type { StartedOperation } from "./accountClaim";
import { eventsJson, insertEventsSql } from "./eventSink";

/** An `up` succeeded: the toolbox's outputs, images and token material, and the last events. */
export async function recordProvisioned(
  db: Queryable,
  cipher: TokenCipher,
  op: StartedOperation,
  req: StackRequest,
  out: ToolboxOutputs,
  pending: EngineEvent[],
): Promise<void> {
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
      tokens_ciphertext: cipher.encrypt(tokens, op.account_id),
    },
  );
}

/** A `destroy` succeeded: the toolbox is deprovisioned, its outputs and credentials gone. */
export async function recordDeprovisioned(
  db: Queryable,
  op: StartedOperation,
  pending: EngineEvent[],
): Promise<void> {
  await finish(db, op, "deprovisioned", {}, pending, { outputs_json: null }, null);
}

/** A drift check ran: its report is the operation's result; the toolbox is left as it is. */
export async function recordRefreshed(
  db: Queryable,
  op: StartedOperation,
  report: DriftReport,
  pending: EngineEvent[],
): Promise<void> {
  await finish(db, op, undefined, report, pending);
}

/** A transient failure with retries left: the operation is queued again, the retry announced. */
export async function recordRetrying(
  db: Queryable,
  op: StartedOperation,
  message: string,
  retry: { retry: number; of: number },
): Promise<void> {
  await db.query(
    "update toolbox_operations set status = 'queued', updated_at = now() where id = $1",
    [op.id],
  );
  await addEvent(db, op.id, "retrying", message, retry);
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
