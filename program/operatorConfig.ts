/** The operator program's stack configuration (index.ts: the platform and listed toolboxes). */
import type * as pulumi from "@pulumi/pulumi";
import {
  ALLOWED_SIZES,
  CONFIG_NAMESPACE,
  DIGEST_PIN_RULE,
  DIGEST_PINNED,
} from "@agentopia-toolboxes/contract";
import { z } from "zod";
import { TOOLBOX_DEFAULTS } from "../components/defaults";
import { ConfigError, parseConfig, type ConfigSource } from "./configSource";
import {
  accountId,
  backendIngress,
  containerMemoryMb,
  controlPlaneCidrs,
  domain,
  imageRef,
  localBackendPort,
  region,
  requireHttpsOnDroplets,
  size,
  swapMb,
  target,
  toolCpus,
  toolMemoryMb,
  toolPids,
  url,
} from "./configValues";

const DEFAULTS = TOOLBOX_DEFAULTS;

const images = z.object({ dtma: imageRef, backend: imageRef });

const toolbox = z.object({
  accountId,
  region: region.optional(),
  size: size.optional(),
  reservedIp: z.boolean().optional(),
  tokenGeneration: z.number().int().min(0).optional(),
});

const operatorSchema = z
  .object({
    target: target.default(DEFAULTS.target),
    regions: z.array(region).min(1, "must list at least one region").default([DEFAULTS.region]),
    defaultSize: size.default(DEFAULTS.size),
    /** Sizes the environment's toolboxes may have (exported in its toolbox profile). */
    sizes: z
      .array(size)
      .min(1, "must list at least one size")
      .default([...ALLOWED_SIZES]),
    dropletImage: z.string().min(1).default(DEFAULTS.dropletImage),
    backups: z.boolean().default(DEFAULTS.backups),
    controlPlaneCidrs: controlPlaneCidrs.optional(),
    automationSshPublicKey: z
      .string()
      .regex(/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?$/, "must be an OpenSSH public key")
      .optional(),
    agentopiaApiBaseUrl: url,
    /** Who may reach the backend port (exported in the toolbox profile). */
    backendIngress: backendIngress.default("controlPlane"),
    dnsZone: domain.optional(),
    images,
    requireDigestPins: z.boolean().default(false),
    dtmaMemoryMb: containerMemoryMb.default(DEFAULTS.dtmaMemoryMb),
    backendMemoryMb: containerMemoryMb.default(DEFAULTS.backendMemoryMb),
    toolCaps: z
      .object({
        memoryMb: toolMemoryMb.default(DEFAULTS.toolCaps.memoryMb),
        cpus: toolCpus.default(DEFAULTS.toolCaps.cpus),
        pids: toolPids.default(DEFAULTS.toolCaps.pids),
      })
      .prefault({}),
    swapMb: swapMb.default(DEFAULTS.swapMb),
    localDockerHost: z.string().min(1).optional(),
    localBackendPort: localBackendPort.default(DEFAULTS.localBackendPort),
    sshStateDir: z.string().min(1).optional(),
    toolboxes: z.array(toolbox).default([]),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.toolboxes.forEach((t, i) => {
      if (seen.has(t.accountId)) {
        ctx.addIssue({
          code: "custom",
          path: ["toolboxes", i, "accountId"],
          message: `duplicates ${t.accountId}`,
        });
      }
      seen.add(t.accountId);
      if (t.size !== undefined && !cfg.sizes.includes(t.size)) {
        ctx.addIssue({
          code: "custom",
          path: ["toolboxes", i, "size"],
          message: `must be one of the environment's sizes (${cfg.sizes.join(", ")})`,
        });
      }
      if (t.region !== undefined && !cfg.regions.includes(t.region)) {
        ctx.addIssue({
          code: "custom",
          path: ["toolboxes", i, "region"],
          message: `must be one of the platform's regions (${cfg.regions.join(", ")})`,
        });
      }
    });
    if (cfg.target === "digitalocean") {
      for (const key of ["controlPlaneCidrs", "automationSshPublicKey"] as const) {
        if (cfg[key] === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: "is required for target digitalocean",
          });
        }
      }
    }
    if (!cfg.sizes.includes(cfg.defaultSize)) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultSize"],
        message: `must be one of the environment's sizes (${cfg.sizes.join(", ")})`,
      });
    }
    requireHttpsOnDroplets(cfg, ctx);
    if (cfg.target === "local" && cfg.backendIngress === "public") {
      ctx.addIssue({
        code: "custom",
        path: ["backendIngress"],
        message:
          "public needs the backend's TLS, which the local target does not have (it serves plain HTTP on loopback)",
      });
    }
    if (cfg.target === "local" && cfg.toolboxes.length > 1) {
      ctx.addIssue({
        code: "custom",
        path: ["toolboxes"],
        message: "the local target runs one toolbox (it publishes one backend port)",
      });
    }
    if (cfg.requireDigestPins) {
      for (const role of ["dtma", "backend"] as const) {
        if (!DIGEST_PINNED.test(cfg.images[role])) {
          ctx.addIssue({
            code: "custom",
            path: ["images", role],
            message: `${DIGEST_PIN_RULE} because requireDigestPins is on`,
          });
        }
      }
    }
  });

export type OperatorConfig = z.infer<typeof operatorSchema> & {
  /** Secret; required when the digitalocean target has toolboxes (readiness gate, Docker over SSH). */
  sshPrivateKey?: pulumi.Output<string>;
};

const OPERATOR_STRING_KEYS = [
  "target",
  "backendIngress",
  "defaultSize",
  "dropletImage",
  "automationSshPublicKey",
  "agentopiaApiBaseUrl",
  "dnsZone",
  "localDockerHost",
  "sshStateDir",
] as const;
const OPERATOR_JSON_KEYS = [
  "regions",
  "sizes",
  "backups",
  "controlPlaneCidrs",
  "images",
  "requireDigestPins",
  "dtmaMemoryMb",
  "backendMemoryMb",
  "toolCaps",
  "swapMb",
  "localBackendPort",
  "toolboxes",
] as const;
export function parseOperatorConfig(source: ConfigSource): OperatorConfig {
  const cfg: OperatorConfig = parseConfig(
    operatorSchema,
    source,
    OPERATOR_STRING_KEYS,
    OPERATOR_JSON_KEYS,
  );
  cfg.sshPrivateKey = source.getSecret("sshPrivateKey");
  if (
    cfg.target === "digitalocean" &&
    cfg.toolboxes.length > 0 &&
    cfg.sshPrivateKey === undefined
  ) {
    throw new ConfigError(
      `${CONFIG_NAMESPACE}:sshPrivateKey: is required (as a secret) when toolboxes are listed for target digitalocean`,
    );
  }
  return cfg;
}
