import { createHash } from "node:crypto";
import { LABEL_ACCOUNT } from "@agentopia-toolboxes/contract/labels";
import type { ParsedSpec } from "./spec";

// Docker is the only source of truth: everything the DTMA needs to rebuild its view of a tool
// after a restart lives in these labels (never a secret: only a hash covers them).

export const LABEL = {
  managedBy: "agentopia.managed-by",
  /** The account, as on the toolbox's resident containers (DTMA_ACCOUNT_ID). */
  account: LABEL_ACCOUNT,
  scope: "agentopia.dtma-scope",
  toolName: "agentopia.tool-name",
  instanceId: "agentopia.account-tool-instance-id",
  specHash: "agentopia.spec-hash",
  transport: "agentopia.transport",
  isolation: "agentopia.isolation",
  maxLanes: "agentopia.max-lanes",
  network: "agentopia.network",
  runAsRoot: "agentopia.run-as-root",
} as const;

export const MANAGED_BY = "dtma";

/**
 * Stable hash of everything that shapes the container (registry auth and pull policy excluded).
 * Secrets count by name only: the hash is in a label and in every answer, and with a secret's
 * value in it a guess could be confirmed offline. Their values are compared with the running
 * container's environment instead (`secretsMatch`).
 */
export function specHash(spec: ParsedSpec, resources: object): string {
  const canonical = {
    image: spec.image,
    command: spec.command ?? null,
    env: sortKeys(spec.env ?? {}),
    secrets: Object.keys(spec.secrets ?? {}).sort(),
    transport: spec.transport,
    isolation: spec.isolation,
    max_lanes: spec.max_lanes,
    resources,
    network: spec.network,
    user: spec.user ?? null,
    run_as_root: spec.run_as_root,
    account_tool_instance_id: spec.account_tool_instance_id ?? null,
  };
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex").slice(0, 32);
}

function sortKeys(m: Record<string, string>): [string, string][] {
  return Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Whether a container's environment (`K=V` entries, as inspected) holds exactly these secrets. */
export function secretsMatch(
  secrets: Record<string, string>,
  env: readonly string[] | null,
): boolean {
  const have = new Set(env ?? []);
  return Object.entries(secrets).every(([k, v]) => have.has(`${k}=${v}`));
}
