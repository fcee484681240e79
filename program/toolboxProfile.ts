/**
 * The toolbox profile: what an environment's platform stack exports (output `toolboxProfile`)
 * and every account stack of that environment is checked against.
 */
import {
  CONFIG_NAMESPACE,
  DIGEST_PIN_RULE,
  DIGEST_PINNED,
  type ToolboxProfile,
} from "@agentopia-toolboxes/contract";
import { z } from "zod";
import type { AccountConfig } from "./accountConfig";
import { ConfigError } from "./configSource";
import {
  backendIngress,
  containerMemoryMb,
  domain,
  region,
  size,
  swapMb,
  toolCpus,
  toolMemoryMb,
  toolPids,
} from "./configValues";
import type { OperatorConfig } from "./operatorConfig";

const profileSchema = z.object({
  regions: z.array(region).min(1),
  sizes: z.array(size).min(1),
  dropletImage: z.string().min(1),
  backups: z.boolean(),
  dtmaMemoryMb: containerMemoryMb,
  backendMemoryMb: containerMemoryMb,
  swapMb,
  toolCaps: z.object({ memoryMb: toolMemoryMb, cpus: toolCpus, pids: toolPids }),
  dnsZone: domain.optional(),
  requireDigestPins: z.boolean(),
  // Platforms exported before TLS had no ingress setting: the control plane only.
  backendIngress: backendIngress.default("controlPlane"),
});

/** The environment's profile, as the operator program exports it for account stacks. */
export function toolboxProfileOf(cfg: OperatorConfig): ToolboxProfile {
  return {
    regions: cfg.regions,
    sizes: cfg.sizes,
    dropletImage: cfg.dropletImage,
    backups: cfg.backups,
    dtmaMemoryMb: cfg.dtmaMemoryMb,
    backendMemoryMb: cfg.backendMemoryMb,
    swapMb: cfg.swapMb,
    toolCaps: cfg.toolCaps,
    ...(cfg.dnsZone !== undefined ? { dnsZone: cfg.dnsZone } : {}),
    requireDigestPins: cfg.requireDigestPins,
    backendIngress: cfg.backendIngress,
  };
}

/**
 * Checks an account stack against its platform's profile: a malformed profile, a region or size
 * the environment does not offer, or unpinned images where pins are required stop the program
 * with one line naming the key.
 */
export function checkAgainstProfile(
  cfg: AccountConfig,
  platformStack: string,
  value: unknown,
): ToolboxProfile {
  const result = profileSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ConfigError(
      `${CONFIG_NAMESPACE}:platformStack: ${platformStack} exports no valid toolboxProfile (${issue.path.join(".")}: ${issue.message}); run pulumi up on it`,
    );
  }
  const profile = result.data;
  const lines: string[] = [];
  if (!profile.regions.includes(cfg.region)) {
    lines.push(`${CONFIG_NAMESPACE}:region: ${platformStack} offers ${profile.regions.join(", ")}`);
  }
  if (!profile.sizes.includes(cfg.size)) {
    lines.push(`${CONFIG_NAMESPACE}:size: ${platformStack} offers ${profile.sizes.join(", ")}`);
  }
  if (profile.requireDigestPins) {
    for (const key of ["dtmaImage", "backendImage"] as const) {
      if (!DIGEST_PINNED.test(cfg[key])) {
        lines.push(
          `${CONFIG_NAMESPACE}:${key}: ${DIGEST_PIN_RULE} (${platformStack} requires pins)`,
        );
      }
    }
  }
  if (lines.length > 0) throw new ConfigError(lines.join("\n"));
  return profile;
}
