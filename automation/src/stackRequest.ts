import type { Settings } from "./config";
import type { ToolboxRow } from "./db/rows";
import type { StackRequest } from "./engine/types";

/** What the service tells the account program, from its settings and the toolbox row. */
export type StackSettings = Pick<
  Settings,
  | "target"
  | "publicBaseUrl"
  | "platformStack"
  | "controlPlaneCidrs"
  | "dtmaImage"
  | "backendImage"
  | "defaultRegion"
  | "defaultSize"
  | "allowedRegions"
  | "allowedSizes"
>;

export function stackRequestFor(settings: StackSettings, row: ToolboxRow): StackRequest {
  const target =
    row.target === "digitalocean" || row.target === "local" ? row.target : settings.target;
  return {
    stackName: row.stack_name,
    config: {
      accountId: row.account_id,
      target,
      region: row.region_slug ?? settings.defaultRegion,
      size: row.size_slug ?? settings.defaultSize,
      platformStack: target === "digitalocean" ? settings.platformStack : undefined,
      agentopiaApiBaseUrl: `${settings.publicBaseUrl}/v1`,
      controlPlaneCidrs: settings.controlPlaneCidrs,
      // An upgrade (or its rollback) sets the account's own images; else the service's.
      dtmaImage: row.dtma_image ?? settings.dtmaImage,
      backendImage: row.backend_image ?? settings.backendImage,
      tokenGeneration: row.token_generation,
    },
  };
}
