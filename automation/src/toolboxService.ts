import type { Pool, PoolClient } from "pg";
import type { PgBoss } from "pg-boss";
import {
  getOpenOperation,
  type OperationKind,
  type OperationRow,
  type ToolboxRow,
} from "./db/rows";
import { stackNameFor } from "./engine/types";
import { enqueueOperation } from "./queue/queue";
import { transaction } from "./db/transaction";

export type RequestOutcome =
  | { outcome: "queued" | "existing"; toolbox: ToolboxRow; operation: OperationRow }
  | { outcome: "current"; toolbox: ToolboxRow }
  | { outcome: "conflict"; toolbox: ToolboxRow; operation: OperationRow }
  | { outcome: "not_provisioned"; toolbox: ToolboxRow }
  | { outcome: "not_found" };

/** Statuses in which a toolbox exists and a provision request has nothing to do. */
const PROVISIONED = new Set(["awaiting_heartbeat", "active", "unresponsive"]);

export interface ProvisionInput {
  accountId: string;
  userId: string;
  region?: string;
  size?: string;
  requestedBy: string;
}

/**
 * Request handling, serialized per account by a row lock on the toolbox row, so that fifty
 * concurrent requests for one account produce one operation. Enqueueing shares the transaction.
 */
export class ToolboxService {
  constructor(
    private readonly pool: Pool,
    private readonly boss: PgBoss,
  ) {}

  async provision(input: ProvisionInput): Promise<RequestOutcome> {
    return transaction(this.pool, async (tx) => {
      await tx.query(
        `insert into account_tool_environments (account_id, user_id, status, stack_name, name)
         values ($1, $2, 'inactive', $3, $3) on conflict (account_id) do nothing`,
        [input.accountId, input.userId, stackNameFor(input.accountId)],
      );
      const toolbox = await this.lockRow(tx, input.accountId);
      const open = await this.openOperation(tx, input.accountId, "provision", toolbox!);
      if (open) return open;
      if (PROVISIONED.has(toolbox!.status)) return { outcome: "current", toolbox: toolbox! };
      await tx.query(
        `update account_tool_environments set status = 'pending_provision', provisioning_error_message = null,
           region_slug = coalesce($2, region_slug), size_slug = coalesce($3, size_slug), updated_at = now()
         where account_id = $1`,
        [input.accountId, input.region ?? null, input.size ?? null],
      );
      return this.enqueue(tx, input.accountId, "provision", input.requestedBy);
    });
  }

  async deprovision(accountId: string, requestedBy: string): Promise<RequestOutcome> {
    return transaction(this.pool, async (tx) => {
      const toolbox = await this.lockRow(tx, accountId);
      if (!toolbox) return { outcome: "not_found" };
      const open = await this.openOperation(tx, accountId, "deprovision", toolbox);
      if (open) return open;
      if (toolbox.status === "deprovisioned" || toolbox.status === "inactive")
        return { outcome: "current", toolbox };
      await tx.query(
        "update account_tool_environments set status = 'pending_deprovision', updated_at = now() where account_id = $1",
        [accountId],
      );
      return this.enqueue(tx, accountId, "deprovision", requestedBy);
    });
  }

  async refresh(accountId: string, requestedBy: string): Promise<RequestOutcome> {
    return transaction(this.pool, async (tx) => {
      const toolbox = await this.lockRow(tx, accountId);
      if (!toolbox || toolbox.status === "deprovisioned" || toolbox.status === "inactive") {
        return { outcome: "not_found" };
      }
      const open = await this.openOperation(tx, accountId, "refresh", toolbox);
      if (open) return open;
      return this.enqueue(tx, accountId, "refresh", requestedBy);
    });
  }

  /** Raises the token generation and queues the update that deploys it (decision 0020). */
  async rotateTokens(accountId: string, requestedBy: string): Promise<RequestOutcome> {
    return transaction(this.pool, async (tx) => {
      const toolbox = await this.lockRow(tx, accountId);
      if (!toolbox) return { outcome: "not_found" };
      const open = await this.openOperation(tx, accountId, "rotate_tokens", toolbox);
      if (open) return open;
      if (!PROVISIONED.has(toolbox.status)) return { outcome: "not_provisioned", toolbox };
      await tx.query(
        `update account_tool_environments set token_generation = token_generation + 1,
           updated_at = now() where account_id = $1`,
        [accountId],
      );
      return this.enqueue(tx, accountId, "rotate_tokens", requestedBy);
    });
  }

  /** The account's open operation, as the answer to a request of `kind` (itself, or a conflict). */
  private async openOperation(
    tx: PoolClient,
    accountId: string,
    kind: OperationKind,
    toolbox: ToolboxRow,
  ): Promise<RequestOutcome | undefined> {
    const open = await getOpenOperation(tx, accountId);
    if (!open) return undefined;
    return { outcome: open.kind === kind ? "existing" : "conflict", toolbox, operation: open };
  }

  private async lockRow(tx: PoolClient, accountId: string): Promise<ToolboxRow | undefined> {
    const { rows } = await tx.query<ToolboxRow>(
      "select * from account_tool_environments where account_id = $1 for update",
      [accountId],
    );
    return rows[0];
  }

  private async enqueue(
    tx: PoolClient,
    accountId: string,
    kind: OperationKind,
    requestedBy: string,
  ) {
    const { rows } = await tx.query<OperationRow>(
      `insert into toolbox_operations (account_id, environment_id, kind, requested_by)
       select $1, id, $2, $3 from account_tool_environments where account_id = $1 returning *`,
      [accountId, kind, requestedBy],
    );
    const operation = rows[0];
    await tx.query(
      "insert into toolbox_operation_events (operation_id, type, message) values ($1, 'queued', $2)",
      [operation.id, `${kind} requested by ${requestedBy}`],
    );
    await enqueueOperation(this.boss, tx, { operationId: operation.id, accountId });
    const { rows: tb } = await tx.query<ToolboxRow>(
      "select * from account_tool_environments where account_id = $1",
      [accountId],
    );
    return { outcome: "queued" as const, toolbox: tb[0], operation };
  }
}
