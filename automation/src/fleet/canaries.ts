/**
 * The operator stacks' canaries (their `toolboxes` config, declared by index.ts through
 * program/operator.ts) heartbeat to this service like every toolbox. The service registers
 * each as a record of its own (managed_by 'operator'), from the stack's outputs read through
 * the engine, with the hash of its DTMA token, so its heartbeats are accepted and it goes
 * `active`. Its account id is a UUID derived from the stack and the canary's id there (the
 * canary's own id need not be a UUID). A token that changes (a rotation) keeps the previous
 * one accepted, as for the service's own toolboxes; a canary the stack no longer declares is
 * `deprovisioned` and its token no longer accepted.
 */
import { isAccountId } from "@agentopia-toolboxes/contract";
import type { Logger } from "pino";
import type { Pool } from "pg";
import { v5 as uuidv5 } from "uuid";
import { z } from "zod";
import type { ToolboxEngine } from "../engine/types";
import type { SecretScrubber } from "../secrets/scrubber";
import { sha256Hex, type TokenCipher } from "../secrets/tokenCipher";
import type { FleetMetrics } from "./metrics";

/** The namespace of canary account ids (uuid v5 of `<stack>/<canary id>`). */
const CANARY_NAMESPACE = "3b0f5c52-8a51-4f4e-9d6c-6f1b2f0c7a10";

export function canaryAccountId(stack: string, canaryId: string): string {
  return uuidv5(`${stack}/${canaryId}`, CANARY_NAMESPACE);
}

const token = z.string().min(32);
const declared = z.record(
  z.string().refine(isAccountId, "is not an account id"),
  z
    .object({
      dtmaToken: token,
      backendApiToken: token,
      agentGatewayToken: token,
      backendUrl: z.string().optional().nullable(),
      dropletId: z.string().optional().nullable(),
      dropletName: z.string().optional().nullable(),
      ipv4: z.string().optional().nullable(),
      ipv6: z.string().optional().nullable(),
    })
    .passthrough(),
);

export interface CanaryDeps {
  pool: Pool;
  engine: ToolboxEngine;
  cipher: TokenCipher;
  log: Logger;
  metrics: FleetMetrics;
  scrubber: SecretScrubber;
  stacks: readonly string[];
}

export interface CanarySync {
  registered: string[];
  retired: string[];
  /** Stacks that could not be read, with why. */
  unreadable: { stack: string; reason: string }[];
}

/** Registers every canary the operator stacks declare; never throws (the answer says). */
export async function syncCanaries(deps: CanaryDeps): Promise<CanarySync> {
  const out: CanarySync = { registered: [], retired: [], unreadable: [] };
  for (const stack of deps.stacks) {
    let outputs: Record<string, unknown> | undefined;
    try {
      outputs = await deps.engine.stackOutputs(stack);
    } catch (err) {
      const text = deps.scrubber.text(err instanceof Error ? err.message : String(err));
      out.unreadable.push({ stack, reason: text.split("\n")[0].slice(0, 500) });
      continue;
    }
    if (outputs === undefined) {
      out.unreadable.push({ stack, reason: "no such stack" });
      continue;
    }
    const parsed = declared.safeParse(outputs.toolboxes ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      out.unreadable.push({
        stack,
        reason: `its toolboxes output is not what program/operator.ts exports (${issue.path.join(".")}: ${issue.message})`,
      });
      continue;
    }
    const ids = Object.keys(parsed.data);
    for (const [id, t] of Object.entries(parsed.data)) {
      const accountId = canaryAccountId(stack, id);
      const ipv4 = t.ipv4 && /^[\d.]+$/.test(t.ipv4) ? t.ipv4 : null;
      const ipv6 = t.ipv6 && /^[\da-f:]+$/i.test(t.ipv6) ? t.ipv6 : null;
      const dropletId = t.dropletId && /^\d{1,18}$/.test(t.dropletId) ? t.dropletId : null;
      const outputsJson = {
        dropletId: dropletId ?? undefined,
        dropletName: t.dropletName ?? undefined,
        ipv4: ipv4 ?? undefined,
        ipv6: ipv6 ?? undefined,
        backendUrl: t.backendUrl ?? undefined,
      };
      // The record changes only when something did (so updated_at means something); its
      // credentials, kept apart from it (migration 8), whenever the token did.
      await deps.pool.query(
        `with env as (
           insert into account_tool_environments as e (account_id, user_id, status, stack_name,
             name, managed_by, operator_stack, operator_toolbox_id, target, backend_url,
             do_droplet_id, do_droplet_name, public_ip_address, public_ipv6_address, outputs_json,
             description)
           values ($1, $1, 'awaiting_heartbeat', $2, $3, 'operator', $2, $3, $4, $7, $8, $9, $10,
             $11, $12, $13)
           on conflict (account_id) do update set
             backend_url = excluded.backend_url, do_droplet_id = excluded.do_droplet_id,
             do_droplet_name = excluded.do_droplet_name,
             public_ip_address = excluded.public_ip_address,
             public_ipv6_address = excluded.public_ipv6_address,
             outputs_json = excluded.outputs_json, target = excluded.target,
             status = case when e.status in ('deprovisioned', 'inactive')
               then 'awaiting_heartbeat'::account_tool_environment_status_enum else e.status end,
             updated_at = now()
           where e.managed_by = 'operator' and (e.backend_url is distinct from excluded.backend_url
             or e.outputs_json is distinct from excluded.outputs_json
             or e.status in ('deprovisioned', 'inactive'))
           returning e.id
         ), target as (
           select id from env
           union
           select id from account_tool_environments where account_id = $1 and managed_by = 'operator'
         )
         insert into account_tool_environment_credentials as c
           (environment_id, dtma_token_hash, tokens_ciphertext)
         select id, $5, $6 from target
         on conflict (environment_id) do update set
           dtma_token_previous_hash = case when c.dtma_token_hash is distinct from excluded.dtma_token_hash
             then c.dtma_token_hash else c.dtma_token_previous_hash end,
           dtma_token_hash = excluded.dtma_token_hash,
           tokens_ciphertext = excluded.tokens_ciphertext, updated_at = now()
         where c.dtma_token_hash is distinct from excluded.dtma_token_hash`,
        [
          accountId,
          stack,
          id,
          dropletId ? "digitalocean" : "local",
          sha256Hex(t.dtmaToken),
          deps.cipher.encrypt(
            {
              dtmaToken: t.dtmaToken,
              dtmaTokenPrevious: "",
              backendApiToken: t.backendApiToken,
              agentGatewayToken: t.agentGatewayToken,
            },
            accountId,
          ),
          t.backendUrl ?? null,
          dropletId,
          t.dropletName ?? null,
          ipv4,
          ipv6,
          JSON.stringify(outputsJson),
          `canary ${id} of operator stack ${stack}`,
        ],
      );
      out.registered.push(accountId);
    }
    const { rows } = await deps.pool.query<{ account_id: string }>(
      `with retired as (
         update account_tool_environments set status = 'deprovisioned', updated_at = now()
         where managed_by = 'operator' and operator_stack = $1
           and not (operator_toolbox_id = any($2::text[])) and status <> 'deprovisioned'
         returning id, account_id
       ), cred as (
         delete from account_tool_environment_credentials c using retired r
         where c.environment_id = r.id
       )
       select account_id::text from retired`,
      [stack, ids],
    );
    out.retired.push(...rows.map((r) => r.account_id));
  }
  deps.metrics.canarySync(out.unreadable.length === 0 ? "succeeded" : "failed");
  for (const u of out.unreadable) {
    deps.log.warn({ stack: u.stack, reason: u.reason }, "operator stack's canaries not registered");
  }
  if (out.registered.length + out.retired.length > 0) {
    deps.log.info(
      { registered: out.registered.length, retired: out.retired.length },
      "operator canaries registered",
    );
  }
  return out;
}
